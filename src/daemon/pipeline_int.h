/*
 * pipeline_int.h - the pipeline's insides, shared by pipeline.c
 * (processing) and pipeline_deliver.c (delivery).  Not for other files:
 * they use pipeline.h.
 */
#ifndef SG_PIPELINE_INT_H
#define SG_PIPELINE_INT_H

#include <pthread.h>

#include "daemon/pipeline.h"
#include "policy/config.h"

struct relay;
struct metrics;
struct quarantine;
struct alerts;
struct directory;

struct pipeline {
	pthread_rwlock_t lock; /* guards cfg */
	const struct cfg *cfg;
	pthread_key_t key;       /* per-thread struct worker */
	struct relay *relay;     /* the SMTP client to next hops */
	struct metrics *metrics; /* borrowed, may be NULL; set before use */
	struct quarantine *quar; /* borrowed, may be NULL; set before use */
	pipeline_split_fn split; /* copies for groups of recipients */
	void *split_arg;
	pipeline_inject_fn inject; /* notify() messages */
	void *inject_arg;
	struct alerts *alerts; /* borrowed, may be NULL */
	struct directory *dir; /* of cfg->ldap, or NULL; replaced with cfg
	                        * under the write lock */
};

#endif /* SG_PIPELINE_INT_H */
