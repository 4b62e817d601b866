"""The server's commands: the command table (registry) and the modules that fill it,
one per command group. Importing the package imports none of them, so the layers
below the commands (client, blocking, the stores) can take registry's errors and
markers without pulling in every command; `commands.groups` imports every group,
which fills the table."""
