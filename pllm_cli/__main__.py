from pllm_cli.cli import main

main()
