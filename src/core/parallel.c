/* A parallel for-loop over a fixed number of threads (frames, slices, blocks). */
#include "core/parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

int mira__cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 256 ? 256 : (int)n);
}

typedef struct loop {
    size_t n;
    atomic_size_t next;
    atomic_bool failed;
    bool (*fn)(void *ctx, size_t i);
    void *ctx;
} loop;

static void *worker(void *arg)
{
    loop *l = arg;
    for (;;) {
        if (atomic_load_explicit(&l->failed, memory_order_relaxed))
            break;
        size_t i = atomic_fetch_add(&l->next, 1);
        if (i >= l->n)
            break;
        if (!l->fn(l->ctx, i))
            atomic_store(&l->failed, true);
    }
    return NULL;
}

bool mira__parallel_for(size_t n, int threads, bool (*fn)(void *ctx, size_t i), void *ctx)
{
    if (n == 0)
        return true;
    size_t t = threads > 0 ? (size_t)threads : (size_t)mira__cpu_count();
    if (t > n)
        t = n;
    loop l = {.n = n, .fn = fn, .ctx = ctx};
    atomic_init(&l.next, 0);
    atomic_init(&l.failed, false);
    if (t <= 1) {
        worker(&l);
        return !atomic_load(&l.failed);
    }
    pthread_t tid[256];
    size_t started = 0;
    for (size_t k = 1; k < t && k < 256; k++) {
        if (pthread_create(&tid[started], NULL, worker, &l) != 0)
            break; /* fewer threads: the caller's thread still finishes the work */
        started++;
    }
    worker(&l);
    for (size_t k = 0; k < started; k++)
        pthread_join(tid[k], NULL);
    return !atomic_load(&l.failed);
}
