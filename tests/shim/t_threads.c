/* 64 threads connect at once (a barrier releases them together), four
 * rounds; every connection echoes and shows the asked peer. */
#include "shimtest.h"
#include <pthread.h>

#define NT 64
static pthread_barrier_t bar;
static int bad[NT], err[NT];

static void *
run(void *arg)
{
	int i = (int)(long)arg, fd;
	char buf[128];

	pthread_barrier_wait(&bar);
	fd = st_connect(st_host(), st_port());
	err[i] = errno;
	if (fd < 0)
		bad[i] = 1;
	else if (st_echo_ok(fd, "thread") != 0)
		bad[i] = 2;
	else if (st_peer_is(fd, st_host(), st_port(), buf, sizeof(buf)) != 0)
		bad[i] = 3;
	if (fd >= 0)
		close(fd);
	return NULL;
}

int
main(int argc, char **argv)
{
	pthread_t t[NT];
	int round, i, nbad;
	double t0;

	st_init(argc, argv);
	for (round = 0; round < 4; round++) {
		memset(bad, 0, sizeof(bad));
		pthread_barrier_init(&bar, NULL, NT);
		t0 = st_now();
		for (i = 0; i < NT; i++)
			pthread_create(&t[i], NULL, run, (void *)(long)i);
		for (i = 0; i < NT; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&bar);
		int kind[4] = { 0 }, e1 = 0;

		for (nbad = 0, i = 0; i < NT; i++) {
			nbad += bad[i] != 0;
			kind[bad[i]]++;
			if (bad[i] == 1 && e1 == 0)
				e1 = err[i];
		}
		printf("# round %d: %.1f ms\n", round, (st_now() - t0) * 1e3);
		CHECK(nbad == 0, "64 threads connect at once",
		    "%d of %d failed (connect %d, first: %s; echo %d; peer %d)",
		    nbad, NT, kind[1], strerror(e1), kind[2], kind[3]);
	}
	return st_done();
}
