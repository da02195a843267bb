/*
 * daemon_dl.h - the daemon's libraries, opened when the gateway starts
 * or a daemon module is first used: libevent (core, extra for the metrics
 * endpoint's evhttp, openssl for STARTTLS, pthreads), OpenSSL's libssl
 * (TLS: STARTTLS and the relay), libxcrypt (AUTH password hashes) and
 * libresolv (MX lookups).  lib/dl.h says why they
 * are not linked: no one-shot command calls them.
 *
 * A file that calls one of them includes this instead of the library's
 * headers; the macros at the end turn each call, including those inside
 * the libraries' own macros (evtimer_new, ...), into a call through the
 * table.  A name missing from SG_DAEMON_FUNCS fails to compile, one missing
 * from the macros fails to link.  `serve` calls daemon_dl_load() before
 * anything else, so that a library that cannot be loaded stops it at
 * start with the file's name; every later call finds the table loaded.
 *
 * libevent_core is one shared library under the other three, so the
 * process has one copy of libevent's state (the combined libevent-2.1 is
 * not used).
 */
#ifndef SG_DAEMON_DL_H
#define SG_DAEMON_DL_H

#include <arpa/nameser.h>
#include <crypt.h>
#include <resolv.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#include <openssl/ssl.h>

#include "lib/dl.h"

#define SG_DAEMON_FUNCS(X)                                                     \
	X(bufferevent_disable)                                                 \
	X(bufferevent_enable)                                                  \
	X(bufferevent_flush)                                                   \
	X(bufferevent_free)                                                    \
	X(bufferevent_get_input)                                               \
	X(bufferevent_get_output)                                              \
	X(bufferevent_get_underlying)                                          \
	X(bufferevent_pair_new)                                                \
	X(bufferevent_setcb)                                                   \
	X(bufferevent_setwatermark)                                            \
	X(bufferevent_socket_new)                                              \
	X(bufferevent_write)                                                   \
	X(evbuffer_add)                                                        \
	X(evbuffer_add_printf)                                                 \
	X(evbuffer_drain)                                                      \
	X(evbuffer_free)                                                       \
	X(evbuffer_get_length)                                                 \
	X(evbuffer_new)                                                        \
	X(evbuffer_ptr_set)                                                    \
	X(evbuffer_pullup)                                                     \
	X(evbuffer_readln)                                                     \
	X(evbuffer_remove)                                                     \
	X(evbuffer_search_range)                                               \
	X(evconnlistener_disable)                                              \
	X(evconnlistener_enable)                                               \
	X(evconnlistener_free)                                                 \
	X(evconnlistener_new_bind)                                             \
	X(evconnlistener_set_error_cb)                                         \
	X(event_active)                                                        \
	X(event_add)                                                           \
	X(event_base_dispatch)                                                 \
	X(event_base_free)                                                     \
	X(event_base_loop)                                                     \
	X(event_base_loopexit)                                                 \
	X(event_base_new)                                                      \
	X(event_del)                                                           \
	X(event_free)                                                          \
	X(event_new)                                                           \
	X(evutil_closesocket)                                                  \
	X(evhttp_add_header)                                                   \
	X(evhttp_bind_socket_with_handle)                                      \
	X(evhttp_free)                                                         \
	X(evhttp_new)                                                          \
	X(evhttp_request_get_evhttp_uri)                                       \
	X(evhttp_request_get_output_headers)                                   \
	X(evhttp_send_error)                                                   \
	X(evhttp_send_reply)                                                   \
	X(evhttp_set_allowed_methods)                                          \
	X(evhttp_set_gencb)                                                    \
	X(evhttp_set_max_body_size)                                            \
	X(evhttp_set_max_headers_size)                                         \
	X(evhttp_set_timeout)                                                  \
	X(evhttp_uri_get_path)                                                 \
	X(bufferevent_get_openssl_error)                                       \
	X(bufferevent_openssl_filter_new)                                      \
	X(bufferevent_openssl_get_ssl)                                         \
	X(bufferevent_openssl_set_allow_dirty_shutdown)                        \
	X(evthread_use_pthreads)                                               \
	X(crypt_checksalt)                                                     \
	X(crypt_gensalt_rn)                                                    \
	X(crypt_rn)                                                            \
	X(ns_get16)                                                            \
	X(ns_initparse)                                                        \
	X(ns_parserr)                                                          \
	X(SSL_CIPHER_get_name)                                                 \
	X(SSL_CTX_check_private_key)                                           \
	X(SSL_CTX_ctrl)                                                        \
	X(SSL_CTX_free)                                                        \
	X(SSL_CTX_new)                                                         \
	X(SSL_CTX_set_default_verify_paths)                                    \
	X(SSL_CTX_set_options)                                                 \
	X(SSL_CTX_set_session_id_context)                                      \
	X(SSL_CTX_set_verify)                                                  \
	X(SSL_CTX_use_PrivateKey_file)                                         \
	X(SSL_CTX_use_certificate_chain_file)                                  \
	X(SSL_connect)                                                         \
	X(SSL_ctrl)                                                            \
	X(SSL_free)                                                            \
	X(SSL_get0_param)                                                      \
	X(SSL_get0_peer_certificate)                                           \
	X(SSL_get_current_cipher)                                              \
	X(SSL_get_error)                                                       \
	X(SSL_get_shutdown)                                                    \
	X(SSL_get_verify_result)                                               \
	X(SSL_get_version)                                                     \
	X(SSL_is_init_finished)                                                \
	X(SSL_new)                                                             \
	X(SSL_read)                                                            \
	X(SSL_set1_host)                                                       \
	X(SSL_set_fd)                                                          \
	X(SSL_shutdown)                                                        \
	X(SSL_write)                                                           \
	X(TLS_client_method)                                                   \
	X(TLS_server_method)

struct daemon_api {
	SG_DAEMON_FUNCS(SG_DL_MEMBER)
};

SG_DL_DECLARE(daemon_dl, daemon_api, "the daemon's libraries")

#ifndef SG_DAEMON_DL_IMPL
#define bufferevent_disable         (daemon_dl()->bufferevent_disable)
#define bufferevent_enable          (daemon_dl()->bufferevent_enable)
#define bufferevent_flush           (daemon_dl()->bufferevent_flush)
#define bufferevent_free            (daemon_dl()->bufferevent_free)
#define bufferevent_get_input       (daemon_dl()->bufferevent_get_input)
#define bufferevent_get_output      (daemon_dl()->bufferevent_get_output)
#define bufferevent_get_underlying  (daemon_dl()->bufferevent_get_underlying)
#define bufferevent_pair_new        (daemon_dl()->bufferevent_pair_new)
#define bufferevent_setcb           (daemon_dl()->bufferevent_setcb)
#define bufferevent_setwatermark    (daemon_dl()->bufferevent_setwatermark)
#define bufferevent_socket_new      (daemon_dl()->bufferevent_socket_new)
#define bufferevent_write           (daemon_dl()->bufferevent_write)
#define evbuffer_add                (daemon_dl()->evbuffer_add)
#define evbuffer_add_printf         (daemon_dl()->evbuffer_add_printf)
#define evbuffer_drain              (daemon_dl()->evbuffer_drain)
#define evbuffer_free               (daemon_dl()->evbuffer_free)
#define evbuffer_get_length         (daemon_dl()->evbuffer_get_length)
#define evbuffer_new                (daemon_dl()->evbuffer_new)
#define evbuffer_ptr_set            (daemon_dl()->evbuffer_ptr_set)
#define evbuffer_pullup             (daemon_dl()->evbuffer_pullup)
#define evbuffer_readln             (daemon_dl()->evbuffer_readln)
#define evbuffer_remove             (daemon_dl()->evbuffer_remove)
#define evbuffer_search_range       (daemon_dl()->evbuffer_search_range)
#define evconnlistener_disable      (daemon_dl()->evconnlistener_disable)
#define evconnlistener_enable       (daemon_dl()->evconnlistener_enable)
#define evconnlistener_free         (daemon_dl()->evconnlistener_free)
#define evconnlistener_new_bind     (daemon_dl()->evconnlistener_new_bind)
#define evconnlistener_set_error_cb (daemon_dl()->evconnlistener_set_error_cb)
#define event_active                (daemon_dl()->event_active)
#define event_add                   (daemon_dl()->event_add)
#define event_base_dispatch         (daemon_dl()->event_base_dispatch)
#define event_base_free             (daemon_dl()->event_base_free)
#define event_base_loop             (daemon_dl()->event_base_loop)
#define event_base_loopexit         (daemon_dl()->event_base_loopexit)
#define event_base_new              (daemon_dl()->event_base_new)
#define event_del                   (daemon_dl()->event_del)
#define event_free                  (daemon_dl()->event_free)
#define event_new                   (daemon_dl()->event_new)
#define evutil_closesocket          (daemon_dl()->evutil_closesocket)
#define evhttp_add_header           (daemon_dl()->evhttp_add_header)
#define evhttp_bind_socket_with_handle                                         \
	(daemon_dl()->evhttp_bind_socket_with_handle)
#define evhttp_free (daemon_dl()->evhttp_free)
#define evhttp_new  (daemon_dl()->evhttp_new)
#define evhttp_request_get_evhttp_uri                                          \
	(daemon_dl()->evhttp_request_get_evhttp_uri)
#define evhttp_request_get_output_headers                                      \
	(daemon_dl()->evhttp_request_get_output_headers)
#define evhttp_send_error           (daemon_dl()->evhttp_send_error)
#define evhttp_send_reply           (daemon_dl()->evhttp_send_reply)
#define evhttp_set_allowed_methods  (daemon_dl()->evhttp_set_allowed_methods)
#define evhttp_set_gencb            (daemon_dl()->evhttp_set_gencb)
#define evhttp_set_max_body_size    (daemon_dl()->evhttp_set_max_body_size)
#define evhttp_set_max_headers_size (daemon_dl()->evhttp_set_max_headers_size)
#define evhttp_set_timeout          (daemon_dl()->evhttp_set_timeout)
#define evhttp_uri_get_path         (daemon_dl()->evhttp_uri_get_path)
#define bufferevent_get_openssl_error                                          \
	(daemon_dl()->bufferevent_get_openssl_error)
#define bufferevent_openssl_filter_new                                         \
	(daemon_dl()->bufferevent_openssl_filter_new)
#define bufferevent_openssl_get_ssl (daemon_dl()->bufferevent_openssl_get_ssl)
#define bufferevent_openssl_set_allow_dirty_shutdown                           \
	(daemon_dl()->bufferevent_openssl_set_allow_dirty_shutdown)
#define evthread_use_pthreads     (daemon_dl()->evthread_use_pthreads)
#define crypt_checksalt           (daemon_dl()->crypt_checksalt)
#define crypt_gensalt_rn          (daemon_dl()->crypt_gensalt_rn)
#define crypt_rn                  (daemon_dl()->crypt_rn)
#define ns_get16                  (daemon_dl()->ns_get16)
#define ns_initparse              (daemon_dl()->ns_initparse)
#define ns_parserr                (daemon_dl()->ns_parserr)
#define SSL_CIPHER_get_name       (daemon_dl()->SSL_CIPHER_get_name)
#define SSL_CTX_check_private_key (daemon_dl()->SSL_CTX_check_private_key)
#define SSL_CTX_ctrl              (daemon_dl()->SSL_CTX_ctrl)
#define SSL_CTX_free              (daemon_dl()->SSL_CTX_free)
#define SSL_CTX_new               (daemon_dl()->SSL_CTX_new)
#define SSL_CTX_set_default_verify_paths                                       \
	(daemon_dl()->SSL_CTX_set_default_verify_paths)
#define SSL_CTX_set_options (daemon_dl()->SSL_CTX_set_options)
#define SSL_CTX_set_session_id_context                                         \
	(daemon_dl()->SSL_CTX_set_session_id_context)
#define SSL_CTX_set_verify          (daemon_dl()->SSL_CTX_set_verify)
#define SSL_CTX_use_PrivateKey_file (daemon_dl()->SSL_CTX_use_PrivateKey_file)
#define SSL_CTX_use_certificate_chain_file                                     \
	(daemon_dl()->SSL_CTX_use_certificate_chain_file)
#define SSL_connect               (daemon_dl()->SSL_connect)
#define SSL_ctrl                  (daemon_dl()->SSL_ctrl)
#define SSL_free                  (daemon_dl()->SSL_free)
#define SSL_get0_param            (daemon_dl()->SSL_get0_param)
#define SSL_get0_peer_certificate (daemon_dl()->SSL_get0_peer_certificate)
#define SSL_get_current_cipher    (daemon_dl()->SSL_get_current_cipher)
#define SSL_get_error             (daemon_dl()->SSL_get_error)
#define SSL_get_shutdown          (daemon_dl()->SSL_get_shutdown)
#define SSL_get_verify_result     (daemon_dl()->SSL_get_verify_result)
#define SSL_get_version           (daemon_dl()->SSL_get_version)
#define SSL_is_init_finished      (daemon_dl()->SSL_is_init_finished)
#define SSL_new                   (daemon_dl()->SSL_new)
#define SSL_read                  (daemon_dl()->SSL_read)
#define SSL_set1_host             (daemon_dl()->SSL_set1_host)
#define SSL_set_fd                (daemon_dl()->SSL_set_fd)
#define SSL_shutdown              (daemon_dl()->SSL_shutdown)
#define SSL_write                 (daemon_dl()->SSL_write)
#define TLS_client_method         (daemon_dl()->TLS_client_method)
#define TLS_server_method         (daemon_dl()->TLS_server_method)
#endif

#endif
