from fastws.cli import main

main()
