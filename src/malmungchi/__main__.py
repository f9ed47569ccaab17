from malmungchi.cli import run

run()
