"""The repository keeps its promises: the README's test command is the one
CI runs, and examples/founding.py is the founding document's code."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / '.ci' / 'run').read_text().strip().splitlines()[-1]
    readme = (ROOT / 'README.md').read_text()
    assert ci in readme


def test_founding_example_is_the_seed_code_with_imports_changed():
    seeds = sorted((ROOT.parent / 'shared' / 'seeds').glob('*.txt'))
    if not seeds:
        pytest.skip('../shared/seeds is not beside the repository')
    seed = {line.strip() for line in seeds[0].read_text().splitlines()}
    seed_text = seeds[0].read_text()
    src = (ROOT / 'examples' / 'founding.py').read_text()
    body = src[src.index('class MLP'):src.index('def make_models')]
    for line in body.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        assert line in seed or line in seed_text, f'not in the founding document: {line!r}'
    imports = [ln for ln in src.splitlines() if re.match(r'(from|import) ', ln)]
    for ln in imports:
        if 'tracer' in ln:
            assert ln.split('  #')[0].replace('tracer', 'mxnet') in seed_text
