"""Stopping a service's background tasks, the one way every service does it."""

import asyncio


async def cancel_and_wait(*tasks: asyncio.Task | None) -> None:
    """Cancel the tasks and wait until each has ended. What they raise on the way out is
    not raised here: a stopping service has nothing left to do with it."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
