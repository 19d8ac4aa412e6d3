"""The tests' own layout: fixtures are shared through conftest.py files, which
pytest finds, and everything else through helper modules. A test module
that imports another runs or shadows its tests and fixtures twice; an
import from a conftest.py loads it a second time under another name; and
the suite under tests/ runs without the bench."""
import ast
import os

from cli.processes import ROOT

# bench/ lies outside tests/, where pytest looks for tests/conftest.py: its
# conftest.py hands it the database fixtures of tests/conftest.py.
MAY_IMPORT_A_CONFTEST = {'bench/conftest.py'}


def python_files(root, *folders):
    for folder in folders:
        for directory, _, names in sorted(os.walk(os.path.join(root, folder))):
            for name in sorted(names):
                if name.endswith('.py'):
                    yield os.path.relpath(os.path.join(directory, name), root)


def module_name(path):
    parts = path[:-len('.py')].split(os.sep)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported(root, path):
    """(line, module) of every import in the file, function bodies included,
    in line order; `from a import b` gives both a and a.b (b may be a module)."""
    with open(os.path.join(root, path)) as f:
        tree = ast.parse(f.read(), path)
    package = module_name(path).split('.')
    if not path.endswith('__init__.py'):
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = '.'.join([*package[:len(package) - node.level + 1], *filter(None, [base])])
            found.append((node.lineno, base))
            found += [(node.lineno, f'{base}.{alias.name}') for alias in node.names]
    return sorted(found)


def is_test_module(module):
    return module.split('.')[-1].startswith('test_')


def offences(root=ROOT):
    found = []
    for path in python_files(root, 'tests', 'bench'):
        in_tests = path.startswith('tests' + os.sep)
        for line, module in imported(root, path):
            where = f'{path}:{line} imports {module}'
            if is_test_module(module) and module.startswith(('tests.', 'bench.')):
                found.append(f'{where}: a test module (move what is shared to a helper '
                             'module, or its fixtures to a conftest.py)')
            elif module.split('.')[-1] == 'conftest' and path not in MAY_IMPORT_A_CONFTEST:
                found.append(f'{where}: a conftest.py (pytest finds its fixtures; helpers '
                             'belong in a module of their own)')
            elif in_tests and (module == 'bench' or module.startswith('bench.')):
                found.append(f'{where}: the bench')
    return found


def test_tests_import_no_test_module_no_conftest_and_not_the_bench():
    assert offences() == []


def test_the_check_sees_each_kind_of_offence(tmp_path):
    """The check itself: each wrong import is found, in a function body too."""
    folder = tmp_path / 'tests' / 'unit'
    folder.mkdir(parents=True)
    (folder / 'test_a.py').write_text(
        'from tests.unit import test_b\n'
        'from tests.e2e.conftest import free_port\n'
        'def test_x():\n'
        '    import bench.cpu\n'
        'from . import conftest\n')
    (folder / 'helper.py').write_text('from tests.settings import DATABASE_URL\n')
    found = offences(str(tmp_path))
    assert [entry.split(':')[1].split()[0] for entry in found] == ['1', '2', '4', '5'], found
    assert 'a test module' in found[0] and 'a conftest.py' in found[1]
    assert 'the bench' in found[2] and 'a conftest.py' in found[3]
