from .cli.run import console_entry

console_entry()
