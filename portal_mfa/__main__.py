from portal_mfa.cli.main import main

main()
