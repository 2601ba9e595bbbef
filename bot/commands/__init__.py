"""One module per command, each with register(app): its ack function, its lazy work and its buttons."""

from bot.commands import collect, collections, order, renew, tranche, update_plan

# tranche last: it answers the usage to any command the others did not take.
MODULES = (renew, update_plan, order, collections, collect, tranche)
