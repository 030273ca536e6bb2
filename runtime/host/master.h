/*
 * master.h - --workers: a master process forks N workers that share one
 * port (SO_REUSEPORT), restarts them, and passes signals on.  The public
 * entry is moonlet_run_workers (moonlet.h); this is what the rest of the
 * runtime asks of it.
 */
#ifndef ML_MASTER_H
#define ML_MASTER_H

#include "moonlet.h"

/*
 * Whether this process runs {single = true} timers now: always with one
 * process; under --workers only in the worker holding the lock file,
 * which the kernel frees when that worker dies, so another one takes over
 * at its next firing.
 */
int ml_master_single_turn(moonlet_server *s);

#endif
