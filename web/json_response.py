"""JSON answers written by orjson: the same documents as Flask's own
provider (keys sorted, compact, ASCII-only is not required by JSON), for a
fraction of its cost on every 202. Anything orjson will not write as
Flask would (datetimes, dataclasses, integers past 64 bits, other types) goes
to Flask's own provider, so no answer changes or fails because of it.
Request bodies are still parsed by web/body.py, strictly, with json."""
import orjson
from flask.json.provider import DefaultJSONProvider

# Datetimes and dataclasses are written by Flask's rules (HTTP dates,
# asdict), not orjson's: they pass through to the fallback.
OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _refuse(value):
    raise TypeError  # orjson gives up on this value: Flask's provider writes the whole document


def encode(obj):
    """An answer's body as orjson writes it (keys sorted, a final newline);
    TypeError for what Flask's provider is to write."""
    return orjson.dumps(obj, default=_refuse, option=OPTIONS | orjson.OPT_APPEND_NEWLINE)


class OrjsonProvider(DefaultJSONProvider):
    def dumps(self, obj, **kwargs):
        if not kwargs:
            try:
                return orjson.dumps(obj, default=_refuse, option=OPTIONS).decode()
            except TypeError:
                pass
        return super().dumps(obj, **kwargs)

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        if self._app.debug or self.compact is False:
            return super().response(*args, **kwargs)  # indented, as Flask does when debugging
        try:
            body = encode(obj)
        except TypeError:
            return super().response(*args, **kwargs)
        return self._app.response_class(body, mimetype=self.mimetype)


def init_json_response(app):
    app.json = OrjsonProvider(app)
