"""This process's memory figures, for the peer scripts beside this file (each started as a file, so this
directory is first on `sys.path`: they import it as `process_memory`). Standard library only."""

import resource


def status_bytes(field):
    """A memory figure of this process from /proc/self/status (Linux), in bytes; 0 elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss_bytes():
    """This process's peak resident memory: VmHWM (Linux), which starts afresh at exec. Not `ru_maxrss` where
    VmHWM exists: Linux keeps it across fork and exec, so it would report the parent's peak."""
    return status_bytes("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
