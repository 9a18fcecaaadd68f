from casebridge.transfer.server import main

main()
