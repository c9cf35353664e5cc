// Lowering the CPU priority of the calling thread (Linux), so that background work and request
// handling can be ordered: the write-behind flusher and the Console API run at the default
// priority, the defender channel's workers and the eviction sweep below it
// (docs/benchmarks.md, B1 and B4).
#pragma once

namespace dc {

/// Sets the nice value (0..19) of the calling thread only: on Linux, setpriority(PRIO_PROCESS,
/// tid) applies to one thread. Raising one's nice value needs no privilege. Returns false (and
/// changes nothing) when the kernel refuses; 0 does nothing and returns true.
bool setThisThreadNice(int nice);

}  // namespace dc
