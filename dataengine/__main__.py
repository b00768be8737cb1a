from dataengine.cli.main import cli

cli()
