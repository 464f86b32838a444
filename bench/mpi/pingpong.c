/*
 * jobbox-pingpong: MPI latency and bandwidth between two ranks, for benchmark P7.
 *
 * Rank 0 sends a message, rank 1 sends it back: one round trip. From rank 0, one line:
 *
 *   latency_us=<x> bandwidth_MBps=<y> cpu_share=<z> nivcsw=<n>
 *
 * latency_us is half a round trip of LAT_BYTES, in microseconds; bandwidth_MBps is BW_BYTES
 * over half a round trip, in MB/s (1 MB = 10^6 bytes). Each is the median of BLOCKS timed
 * blocks after one untimed warm-up block, so a single scheduling hiccup moves neither.
 * cpu_share and nivcsw say whether the run was starved of CPU: a waiting rank busy-polls, so
 * each rank wants a whole CPU. cpu_share is the lower of the two ranks' CPU time (user + system)
 * over wall time, from the first warm-up to the last block; nivcsw is both ranks' involuntary
 * context switches in that span (getrusage).
 *
 * Usage: jobbox-pingpong [LATENCY_ITERS [BANDWIDTH_ITERS]]   (round trips per block)
 * The defaults take about 1 s in all over TCP between two namespaces on one machine.
 * The testbed builds it inside the deb12-bench image (testbed.sh bench-image).
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

enum { LAT_BYTES = 8, BW_BYTES = 4 << 20, BLOCKS = 9 };
enum { LAT_ITERS = 2000, BW_ITERS = 20 };

/* Mean seconds per round trip of `bytes` over `iters` round trips, as rank 0 sees it. */
static double round_trip(char *buf, int bytes, int iters, int rank)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++) {
        if (rank == 0) {
            MPI_Send(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
        }
    }
    return (MPI_Wtime() - t0) / iters;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median block's seconds per round trip; the first block warms up connections and caches. */
static double median_round_trip(char *buf, int bytes, int iters, int rank)
{
    double t[BLOCKS];
    round_trip(buf, bytes, iters, rank);
    for (int b = 0; b < BLOCKS; b++) t[b] = round_trip(buf, bytes, iters, rank);
    qsort(t, BLOCKS, sizeof t[0], by_value);
    return t[BLOCKS / 2];
}

/* This process's CPU seconds (user + system) so far, and its involuntary context switches. */
static double cpu_seconds(long *nivcsw)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *nivcsw = ru.ru_nivcsw;
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* A positive count from argv, or `fallback` when absent; 0 when malformed. */
static int count_arg(int argc, char **argv, int i, int fallback)
{
    if (i >= argc) return fallback;
    char *end;
    long v = strtol(argv[i], &end, 10);
    return *end == '\0' && v > 0 && v <= 1000000000 ? (int)v : 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int lat_iters = count_arg(argc, argv, 1, LAT_ITERS);
    int bw_iters = count_arg(argc, argv, 2, BW_ITERS);
    if (size != 2 || lat_iters == 0 || bw_iters == 0 || argc > 3) {
        if (rank == 0) {
            fprintf(stderr, "jobbox-pingpong: needs exactly 2 ranks (got %d) and counts > 0\n"
                            "usage: jobbox-pingpong [LATENCY_ITERS [BANDWIDTH_ITERS]]\n", size);
        }
        MPI_Finalize();
        return 2;
    }

    /* Touched before timing, so no page fault lands in a timed block. */
    char *buf = malloc(BW_BYTES);
    if (!buf) MPI_Abort(MPI_COMM_WORLD, 1);
    memset(buf, rank + 1, BW_BYTES);

    long csw0, csw1;
    double wall0 = MPI_Wtime(), cpu0 = cpu_seconds(&csw0);
    double lat = median_round_trip(buf, LAT_BYTES, lat_iters, rank) / 2;
    double bw = median_round_trip(buf, BW_BYTES, bw_iters, rank) / 2;
    double share = (cpu_seconds(&csw1) - cpu0) / (MPI_Wtime() - wall0), min_share;
    long csw = csw1 - csw0, all_csw;
    MPI_Reduce(&share, &min_share, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
    MPI_Reduce(&csw, &all_csw, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("latency_us=%.2f bandwidth_MBps=%.1f cpu_share=%.2f nivcsw=%ld\n",
               lat * 1e6, BW_BYTES / bw / 1e6, min_share, all_csw);
    }

    free(buf);
    MPI_Finalize();
    return 0;
}
