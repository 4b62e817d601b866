"""The server's commands: the command table (registry) and one module per command group.

Importing the package imports none of the groups, so the layers below the commands (client,
blocking, the stores) can take registry's errors and markers without pulling in every command;
`commands.groups` imports every group, which fills the table."""
