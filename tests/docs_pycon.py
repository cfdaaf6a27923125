"""Run a ``pycon`` block from stdin as a doctest; its shown output is compared as the
console blocks' is (numbers within a tolerance, ``...`` for any text). Argument: ``check``,
or ``varies`` to run without comparing."""

import doctest
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from docs_examples import output_matches  # noqa: E402


class Checker(doctest.OutputChecker):
    def check_output(self, want, got, optionflags):
        if sys.argv[1] == "varies":
            return True
        return output_matches(want.splitlines(), got.splitlines())


def main() -> int:
    test = doctest.DocTestParser().get_doctest(sys.stdin.read(), {}, "example", "<docs>", 0)
    runner = doctest.DocTestRunner(checker=Checker(), optionflags=doctest.REPORT_NDIFF)
    runner.run(test)
    return 1 if runner.failures else 0


if __name__ == "__main__":
    sys.exit(main())
