from malmungchi.cli import main

main()
