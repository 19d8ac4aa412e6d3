"""What the bad bodies are made of: the kinds and their fields, valid
payloads, and JSON text built by hand (a raw literal in a field, deep
nesting, an exact size)."""
import json

from tasks import REGISTRY, load_all
from tests.integration.jobs import VALID

KINDS = sorted(load_all())
FIELDS = {name: sorted(REGISTRY[name].schema['properties']) for name in KINDS}
STRING_FIELDS = [(name, field) for name in KINDS for field in FIELDS[name]
                 if REGISTRY[name].schema['properties'][field]['type'] == 'string']
ALL_FIELDS = sorted({field for fields in FIELDS.values() for field in fields})

GENRE = VALID['genre.create']
CREDIT = VALID['user.credit']


def with_raw(payload, field, raw):
    """The payload as JSON text, `field` holding the JSON text `raw` as is."""
    items = [f'{json.dumps(k)}: {json.dumps(v)}' for k, v in payload.items() if k != field]
    return ('{' + ', '.join([*items, f'{json.dumps(field)}: {raw}']) + '}').encode()


def deep(depth, shape='array', leaf='1'):
    opener, closer = {'array': ('[', ']'), 'object': ('{"a":', '}'),
                      'mixed': ('[{"a":', '}]')}[shape]
    return opener * depth + leaf + closer * depth


def sized(size):
    """A JSON object of exactly `size` bytes (an over-long description)."""
    head = json.dumps({**GENRE, 'description': ''}).encode()
    body = head[:-2] + b'x' * (size - len(head)) + b'"}'
    assert len(body) == size
    return body


def dumps(document, how):
    """JSON text of a document as bytes: escaped ASCII, raw UTF-8 (a lone
    surrogate as its invalid UTF-8 form), pretty, or in UTF-16/32."""
    if how == 'ascii':
        return json.dumps(document).encode()
    if how.startswith(('utf-16', 'utf-32')):
        return json.dumps(document).encode(how)
    text = json.dumps(document, ensure_ascii=False, indent=2 if how == 'pretty' else None)
    return text.encode('utf-8', 'surrogatepass')
