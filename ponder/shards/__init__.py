"""A run's problems sharded over several driver processes, recorded through one writer.

One driver process dispatches what one core allows: its HTTP client alone costs about a
millisecond of CPU per step request, so one process tops out near 200 requests/s (``ponder
bench scale``). ``drivers: N`` (``ponder run`` / ``ponder label``) runs the problems of one run
as ``N`` Ray actors (:class:`~ponder.shards.actors.ShardDriver`), each the same single asyncio
process with the same scheduler, client and answer checker (``ponder.run.search_problems``) on
its shard (pending problem ``i`` to driver ``i mod N``), all against the same servers.

The command's own process does what an unsharded run does around the search: it holds the run
directory (lock, config check, resume by the ids in ``results.jsonl``), starts the servers once
(``ponder.engine.model_endpoints``: endpoints, replicas or a Ray cluster's replica actors) and
hands them to the drivers as endpoints. A server it started that dies is restarted by it, once,
however many drivers saw it go (a driver's breaker asks the writer, this process does it).
Every finished problem (labels, trace, result line, in that order) and every engine event goes
to one :class:`~ponder.shards.actors.ShardWriter` actor on this machine, which writes them into
the run directory in the layout of an unsharded run (``ponder.rundir``).

Nothing is recorded twice: the writer refuses a second finished row for a problem. A driver
actor that dies is an engine fault of its shard: it is killed for good, its token revoked (the
writer refuses anything it still sends), and the problems it had not recorded go to a new
driver actor (at most :data:`~ponder.shards.supervisor.DRIVER_RESTARTS` times per shard, then
the run stops and a re-run resumes them). After a SIGKILL the actors die with their owner and a
re-run skips the problems whose result line was written, as an unsharded run does.

Ray is imported only by this package, and the package only when ``drivers`` > 1:
:mod:`ponder.shards.actors` what runs inside Ray (the writer, the drivers),
:mod:`ponder.shards.supervisor` the command's side (``run_sharded``: the actors, their
supervision, the servers' restarts).
"""
