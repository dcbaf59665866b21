from idpbuilder.cli.main import main

main()
