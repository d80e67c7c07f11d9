from loadbearing.cli import entry

entry()
