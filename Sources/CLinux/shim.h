#ifndef DMSURGERY_CSYSTEM_SHIM_H
#define DMSURGERY_CSYSTEM_SHIM_H
/* Linux calls Glibc's Swift module does not export (they need _GNU_SOURCE there). */
#include <unistd.h>
#include <sys/syscall.h>

#define DMS_SYNC_FILE_RANGE_WAIT_BEFORE 1u
#define DMS_SYNC_FILE_RANGE_WRITE 2u
#define DMS_SYNC_FILE_RANGE_WAIT_AFTER 4u

/* sync_file_range(2): start (and optionally wait for) writeback of a byte range. */
static inline int dms_sync_file_range(int fd, long long offset, long long count, unsigned int flags) {
    return (int)syscall(SYS_sync_file_range, fd, offset, count, flags);
}

/* O_TMPFILE (a file with no name until linkat gives it one); 0 where the headers lack it. */
#include <fcntl.h>
static inline int dms_o_tmpfile(void) {
#ifdef __O_TMPFILE
    return __O_TMPFILE | O_DIRECTORY;
#else
    return 0;
#endif
}

/* The soft RLIMIT_AS (`ulimit -v`) in bytes; -1 when unlimited. */
#include <sys/resource.h>
static inline long long dms_address_space_limit(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return -1;
    return (long long)r.rlim_cur;
}

/* How many CPUs this process may run on: its affinity mask (taskset, `mpirun --bind-to core`, a cgroup
   cpuset), which the online CPU count (sysconf, Foundation's activeProcessorCount) ignores. The raw
   system call, since CPU_COUNT needs _GNU_SOURCE; 0 where unknown (no such call: not Linux). */
static inline int dms_affinity_cpu_count(void) {
#ifdef SYS_sched_getaffinity
    unsigned long mask[1024]; /* 65,536 CPUs */
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    if (bytes <= 0) return 0;
    int count = 0;
    for (long i = 0; i < bytes / (long)sizeof mask[0]; i++) count += __builtin_popcountl(mask[i]);
    return count;
#else
    return 0;
#endif
}
#endif
