/* MPI_Allreduce bandwidth through this machine's shared memory, as dmsurgery's data-parallel step calls
 * it: in place, MPI_SUM over MPI_DOUBLE, buffers of 2^22 doubles (32 MiB, DataParallel.reduce's
 * staging size). Prints the median seconds per call and the effective bytes per second of gradient.
 *
 *   mpicc -O2 -o /tmp/mpi_allreduce scripts/bench/mpi_allreduce.c
 *   mpirun -np 2 --bind-to core /tmp/mpi_allreduce [CALLS] [COUNT]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int calls = argc > 1 ? atoi(argv[1]) : 20;
    int count = argc > 2 ? atoi(argv[2]) : 1 << 22;
    if (calls < 1) calls = 1;
    if (count < 1 || count > 1 << 26) count = 1 << 22;
    double *buffer = malloc(sizeof(double) * count), *times = malloc(sizeof(double) * calls);
    for (int i = 0; i < count; i++) buffer[i] = rank + i * 1e-9;
    MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); /* warm-up */
    for (int c = 0; c < calls; c++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        times[c] = MPI_Wtime() - t0;
    }
    qsort(times, calls, sizeof(double), compare);
    if (rank == 0) {
        double median = times[calls / 2];
        printf("ranks %d: %d doubles (%.1f MiB) per call, median %.4f s, %.2f GB/s of buffer\n", size, count,
               count * 8.0 / (1 << 20), median, count * 8.0 / median / 1e9);
    }
    free(buffer);
    free(times);
    MPI_Finalize();
    return 0;
}
