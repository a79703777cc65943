from wfe_yaml.cli.main import main

main()
