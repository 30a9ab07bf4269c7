from evalgrid.cli import main

main(prog_name="evalgrid")
