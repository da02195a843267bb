/*
 * rx.c - what matching costs with src/policy/rx.c next to glibc's
 * regexec (REG_EXTENDED | REG_NOSUB), in the same run, interleaved:
 * typical filter patterns on English-like lines and hostile patterns on
 * hostile text, 10 KiB, 100 KiB and 1 MiB.  Prints milliseconds per
 * call for each and the ratio rx/glibc.  A glibc measurement whose
 * smaller size already took more than CAP seconds (default 5) is not
 * made: the row prints '>' and the time the smaller size, scaled up
 * linearly, gives (a lower bound).
 *
 *   cc -O2 -D_GNU_SOURCE -Iinclude -Isrc -o build/rx_bench bench/rx.c \
 *      src/policy/rx.c
 *   build/rx_bench [CAP]
 */
#include <gnu/libc-version.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/rx.h"

#define ROUNDS    3    /* interleaved rounds per cell, median taken */
#define CALL_TIME 0.05 /* seconds a round's repeated calls aim at */
#define LONG_CALL 1.0  /* a call that long is measured once */

enum text_kind { TYPICAL, ALL_A, RANDOM_AB };

static const struct {
	const char *pat;
	int flags;
	enum text_kind text;
} pats[] = {
    {"confidential|secret", RX_ICASE | RX_NEWLINE, TYPICAL},
    {"\\.(exe|scr|js)$", RX_ICASE | RX_NEWLINE, TYPICAL},
    {"^[^@]+@example\\.com$", RX_ICASE | RX_NEWLINE, TYPICAL},
    {"[a-z]{1,255}", RX_ICASE | RX_NEWLINE, TYPICAL},
    {"a.*b", 0, ALL_A},
    {"(a|b)*a(a|b){15}c", 0, RANDOM_AB},
    {"a[ab]{200}c", 0, RANDOM_AB},
};

static const size_t sizes[] = {10 * 1024, 100 * 1024, 1024 * 1024};
#define NSIZES (sizeof(sizes) / sizeof(*sizes))

static const char *const text_names[] = {"lines", "a...", "a/b"};

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* LEN bytes of KIND, NUL-terminated (LEN + 1 allocated). */
static char *
make_text(enum text_kind kind, size_t len)
{
	static const char *const words[] = {
	    "the",      "quarterly", "report",  "is",     "attached", "please",
	    "review",   "meeting",   "at",      "ten",    "regards",  "invoice",
	    "number",   "4711",      "payment", "due",    "thanks",   "project",
	    "update",   "schedule",  "budget",  "team",   "draft",    "agenda",
	    "notes",    "Hello",     "Bob,",    "Alice.", "office",   "call",
	    "tomorrow", "2026",      "and",     "of",     "to",       "for",
	};
	char *t = malloc(len + 1);
	uint64_t seed = 0x2545f4914f6cdd1du;
	size_t n = 0, col = 0;

	if (t == NULL)
		return NULL;
	if (kind == ALL_A) {
		memset(t, 'a', len);
	} else if (kind == RANDOM_AB) {
		for (n = 0; n < len; n++)
			t[n] = rnd(&seed) & 1 ? 'a' : 'b';
	} else {
		while (n < len) {
			const char *w = words[rnd(&seed) %
			                      (sizeof(words) / sizeof(*words))];
			size_t wl = strlen(w);

			if (col > 0 && col + wl + 1 > 72) {
				t[n++] = '\n';
				col = 0;
				continue;
			}
			if (col > 0) {
				t[n++] = ' ';
				col++;
			}
			for (size_t k = 0; k < wl && n < len; k++, col++)
				t[n++] = w[k];
		}
	}
	t[len] = '\0';
	return t;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Seconds per call of glibc (WHO 0) or rx (WHO 1) on TEXT, REPS calls;
 * the result of the last in *RES. */
static double
time_calls(int who, const regex_t *g, const struct rx *r, const char *text,
           size_t len, long reps, int *res)
{
	double t0 = now();

	for (long k = 0; k < reps; k++)
		*res = who == 0 ? regexec(g, text, 0, NULL, 0) == 0
		                : rx_match(r, text, len);
	return (now() - t0) / (double)reps;
}

/* How many calls make a round of about CALL_TIME, from one call's time. */
static long
reps_for(double one)
{
	double n = one > 0 ? CALL_TIME / one : 1000;

	return n < 1 ? 1 : n > 1000 ? 1000 : (long)n;
}

int
main(int argc, char **argv)
{
	double cap = argc > 1 ? atof(argv[1]) : 5.0;
	int failed = 0;

	if (cap <= 0) {
		fprintf(stderr, "usage: rx_bench [CAP seconds, default 5]\n");
		return 2;
	}
	printf("glibc %s regexec against rx, same run, interleaved "
	       "(median of %d rounds; glibc capped at %.1f s a call)\n\n",
	       gnu_get_libc_version(), ROUNDS, cap);
	printf("%-22s %-7s %-5s %8s | %12s %12s | %9s | %s\n", "pattern",
	       "flags", "text", "size", "glibc ms", "rx ms", "rx/glibc",
	       "match");
	for (size_t p = 0; p < sizeof(pats) / sizeof(*pats); p++) {
		regex_t g;
		struct rx *r;
		char why[256];
		int limit, gflags = REG_EXTENDED | REG_NOSUB;
		double gprev = -1; /* glibc's time on the previous size */

		if (pats[p].flags & RX_ICASE)
			gflags |= REG_ICASE;
		if (pats[p].flags & RX_NEWLINE)
			gflags |= REG_NEWLINE;
		if (regcomp(&g, pats[p].pat, gflags) != 0) {
			fprintf(stderr, "rx_bench: regcomp refuses %s\n",
			        pats[p].pat);
			return 1;
		}
		if ((r = rx_compile(pats[p].pat, pats[p].flags, why,
		                    sizeof(why), &limit)) == NULL) {
			fprintf(stderr, "rx_bench: rx_compile refuses %s: %s\n",
			        pats[p].pat, why);
			regfree(&g);
			return 1;
		}
		for (size_t s = 0; s < NSIZES; s++) {
			size_t len = sizes[s];
			char *text = make_text(pats[p].text, len);
			double gt[ROUNDS], rt[ROUNDS], g1, r1, gm, rm;
			long greps, rreps;
			int gres = -1, rres = -1, skip, rounds;
			char gcol[32], ratio[32], sz[32];

			if (text == NULL) {
				perror("rx_bench");
				return 1;
			}
			/* the previous size took over CAP, or would take
			 * over 8 x CAP scaled up to this one */
			skip = gprev > cap ||
			       (gprev >= 0 &&
			        gprev * (double)len / (double)sizes[s - 1] >
			            8 * cap);
			/* a first call of each sizes the rounds; a long
			 * glibc call is that call alone */
			r1 = time_calls(1, &g, r, text, len, 1, &rres);
			g1 = skip ? 0
			          : time_calls(0, &g, r, text, len, 1, &gres);
			greps = reps_for(g1);
			rreps = reps_for(r1);
			rounds = skip ? 0 : g1 > LONG_CALL ? 1 : ROUNDS;
			if (rounds == 1)
				gt[0] = g1;
			for (int k = 0; k < ROUNDS; k++) {
				if (k < rounds && rounds > 1)
					gt[k] = time_calls(0, &g, r, text, len,
					                   greps, &gres);
				rt[k] = time_calls(1, &g, r, text, len, rreps,
				                   &rres);
			}
			qsort(rt, ROUNDS, sizeof(*rt), cmp_double);
			rm = rt[ROUNDS / 2];
			if (skip) {
				gm = gprev * (double)len / (double)sizes[s - 1];
				snprintf(gcol, sizeof(gcol), ">%.1f", gm * 1e3);
				snprintf(ratio, sizeof(ratio), "<%.4f",
				         rm / gm);
				gprev = gm;
			} else {
				qsort(gt, (size_t)rounds, sizeof(*gt),
				      cmp_double);
				gm = gt[rounds / 2];
				snprintf(gcol, sizeof(gcol), "%.3f", gm * 1e3);
				snprintf(ratio, sizeof(ratio), "%.4f", rm / gm);
				gprev = gm;
			}
			snprintf(sz, sizeof(sz), "%zu KiB", len / 1024);
			printf(
			    "%-22s %-7s %-5s %8s | %12s %12.3f | %9s | %d%s\n",
			    pats[p].pat,
			    pats[p].flags == (RX_ICASE | RX_NEWLINE) ? "i,nl"
			                                             : "-",
			    text_names[pats[p].text], sz, gcol, rm * 1e3, ratio,
			    rres, !skip && gres != rres ? " DIFFERENT" : "");
			fflush(stdout);
			if (rres < 0 || (!skip && gres != rres))
				failed = 1;
			free(text);
		}
		regfree(&g);
		rx_free(r);
	}
	printf("\nms: milliseconds per call; rx/glibc below 1 is rx faster. "
	       "flags i,nl: ICASE|NEWLINE (a filter on a body)\n");
	return failed;
}
