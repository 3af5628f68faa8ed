"""Runs some test classes of one integration module, so that a long module can be
several ctest tests that `ctest -j` runs side by side.

  python3 run_classes.py MODULE --only CLASS [CLASS ...]
  python3 run_classes.py MODULE --except CLASS [CLASS ...]

--except runs every other class, so a class added to the module later is never
left out. A name that is not a test class of the module is an error.
"""
import argparse
import sys
import unittest


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--only", nargs="+", metavar="CLASS")
    group.add_argument("--except", dest="exclude", nargs="+", metavar="CLASS")
    args = parser.parse_args()

    module = __import__(args.module)
    classes = {name for name, value in vars(module).items()
               if isinstance(value, type) and issubclass(value, unittest.TestCase) and value.__module__ == module.__name__}
    named = set(args.only or args.exclude)
    unknown = sorted(named - classes)
    if unknown:
        parser.error(f"not a test class of {args.module}: {', '.join(unknown)}")
    chosen = named if args.only else classes - named
    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite(loader.loadTestsFromTestCase(getattr(module, name)) for name in sorted(chosen))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    return 0 if result.wasSuccessful() and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
