import sys

try:
    from idpbuilder.cli.main import main

    main()
except KeyboardInterrupt:  # Ctrl-C before the CLI's own handling is in place (start-up, module imports)
    sys.stderr.write("Error: interrupted\n")
    sys.exit(130)
