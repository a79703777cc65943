from wfe_yaml.cli.main import entry

entry()
