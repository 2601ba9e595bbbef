"""The every-minute tick, for `rq cron jobs/cron.py` (the Procfile's `tick`).

rq cron takes no lock, so two of them would queue each tick twice: harmless, since a tick only turns
what the database says is due into jobs, and every job claims its row before it acts.
"""

from rq import cron

from jobs.work import tick
from runtime import QUEUE, configure_logging

configure_logging("tick")  # this module is loaded only by the Procfile's `rq cron`
cron.register(tick, QUEUE, interval=60, result_ttl=0)
