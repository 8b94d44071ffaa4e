"""The `meshkp` command: a click group whose subcommands are imported only when used.

Subcommands live in their own modules (cli/serve.py, cli/load.py, ...). COMMANDS maps each
name to "module:attribute"; a command whose module does not exist (yet) is left out of
`meshkp --help` instead of breaking the whole CLI. To add one, write the module and add one
line here.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

COMMANDS: dict[str, str] = {
    "serve": "cli.serve:serve",
    "config": "cli.config_cmd:config",
    "dev": "cli.dev:dev",
    "load": "cli.load:load",
    "dump": "cli.dump:dump",
    "keygen": "cli.keygen:keygen",
    "join": "cli.cluster:join",
    "leave": "cli.cluster:leave",
    "members": "cli.cluster:members",
    "status": "cli.cluster:status",
    "delete": "cli.delete:delete",
    "conflicts": "cli.delete:conflicts",
    "admins": "cli.admins:admins",
    "sync": "cli.delete:sync",
    "lb-config": "cli.lb_config:lb_config",
    "leader": "cli.control:leader",
    "policy": "cli.control:policy",
    "routing": "cli.control:routing",
    "audit": "cli.control:audit",
    "top": "cli.top.command:top",
    "recover": "cli.recover:recover",
    "backup": "cli.backup:backup",
    "restore": "cli.backup:restore",
}


def _module_exists(target: str) -> bool:
    module = target.split(":", 1)[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


class LazyGroup(click.Group):
    """A group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        eager = set(super().list_commands(ctx))
        lazy = {name for name, target in COMMANDS.items() if _module_exists(target)}
        return sorted(eager | lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target):
            return None
        module_name, attribute = target.split(":", 1)
        module = importlib.import_module(module_name)
        found = getattr(module, attribute, None)
        if not isinstance(found, click.Command):
            raise click.ClickException(f"{target} is not a click command")
        return found


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="meshkp", message="meshkp %(version)s")
def main() -> None:
    """meshkp: an OpenPGP keyserver (HKP) whose nodes form a CRDT-replicated mesh."""


if __name__ == "__main__":
    main()
