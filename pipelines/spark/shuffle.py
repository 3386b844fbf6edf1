"""Bytes a run's shuffles wrote, read off the classic driver's status store (what the UI's Stages tab shows).

The vectors are most of a run's bytes: a shuffle of them costs a write and a read of the whole token table
on local disk. The run manifest records the shuffle bytes of each phase (:class:`pipelines.run.phases.RunClock`)
so that a run shows where rows crossed the disk. A Spark Connect client has no driver on its side to ask:
there every figure is None, and the note says why.
"""

from __future__ import annotations

from pipelines.spark.session import is_connect

CONNECT_NOTE = ("not measured: a Spark Connect client has no SparkContext, and so no access to the stages' "
                "shuffle metrics (the server's UI shows them)")
# How long to wait for the listener bus to bring the status store up to date before reading it.
_LISTENER_WAIT_MS = 10_000


class ShuffleMeter:
    """Shuffle bytes written by the stages started after a mark (stage ids only grow). Counts every job of
    the application, so a notebook that runs other jobs at the same time adds theirs."""

    def __init__(self, spark) -> None:
        self._sc = None if is_connect(spark) else spark.sparkContext
        self.note = CONNECT_NOTE if self._sc is None else None

    def mark(self) -> int | None:
        """The newest stage id so far (-1: none yet); None where nothing can be measured."""
        stages = self._stages()
        return None if stages is None else max((stage_id for stage_id, _ in stages), default=-1)

    def since(self, mark: int | None) -> int | None:
        """Bytes the shuffles of the stages after ``mark`` wrote (every attempt of each)."""
        stages = None if mark is None else self._stages()
        return None if stages is None else sum(written for stage_id, written in stages if stage_id > mark)

    def _stages(self) -> list[tuple[int, int]] | None:
        """(stage id, shuffle bytes written) of every stage attempt the status store retains; None when this
        driver cannot say (Spark Connect, or a Spark whose internals moved: the run goes on without)."""
        if self._sc is None:
            return None
        try:
            jsc = self._sc._jsc.sc()
            jsc.listenerBus().waitUntilEmpty(_LISTENER_WAIT_MS)  # the status store is fed by the listener bus
            gateway = self._sc._gateway
            stages = jsc.statusStore().stageList(  # (statuses: all, details, withSummaries, quantiles, taskStatus)
                None, False, False, gateway.new_array(gateway.jvm.double, 0), gateway.jvm.java.util.ArrayList())
            found, it = [], stages.iterator()
            while it.hasNext():
                stage = it.next()
                found.append((stage.stageId(), stage.shuffleWriteBytes()))
            return found
        except Exception as e:  # py4j errors, a timeout of the bus: no figure rather than no run
            self.note = f"not measured: the driver's status store could not be read ({type(e).__name__})"
            self._sc = None
            return None
