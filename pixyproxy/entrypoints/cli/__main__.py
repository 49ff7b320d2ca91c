from pixyproxy.entrypoints.cli import main

main()
