"""README.md's Python example runs as written (its ```pycon blocks, as doctests), on a small text and a new run
folder (TEXT, RUN)."""
import doctest
import re

from helpers import ROOT, word_corpus


def test_readme_python_examples(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```pycon\n(.*?)```", readme, re.S)
    assert blocks
    globs = {"TEXT": str(word_corpus(tmp_path)), "RUN": str(tmp_path / "run")}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for i, block in enumerate(blocks):
        test = doctest.DocTestParser().get_doctest(block, globs, f"README block {i}", "README.md", 0)
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0
