/*
 * gmime_dl.h - GMime (and the GLib calls that come with it), opened on
 * first use (lib/dl.h says why it is not linked).
 *
 * A file that calls GMime includes this instead of <gmime/gmime.h>: the
 * macros at the end turn each call, including those inside GMime's own
 * macros (GMIME_IS_MULTIPART, ...), into a call through the table.  A name
 * missing from SG_GMIME_FUNCS fails to compile, one missing from the
 * macros fails to link (the binary does not link GMime).  Loading calls
 * g_mime_init() once.
 *
 * The library's entry points that need GMime call sg_gmime_need()
 * (lib/sg_int.h) first, so that a GMime that cannot be loaded is a
 * temporary failure with the file's name in the reason.
 */
#ifndef SG_GMIME_DL_H
#define SG_GMIME_DL_H

#include <gmime/gmime.h>

#include "lib/dl.h"

#define SG_GMIME_FUNCS(X)                                                      \
	X(g_free)                                                              \
	X(g_mime_application_pkcs7_mime_get_type)                              \
	X(g_mime_content_type_get_media_subtype)                               \
	X(g_mime_content_type_get_media_type)                                  \
	X(g_mime_content_type_get_parameter)                                   \
	X(g_mime_content_type_is_type)                                         \
	X(g_mime_content_type_parse)                                           \
	X(g_mime_data_wrapper_get_stream)                                      \
	X(g_mime_format_options_free)                                          \
	X(g_mime_format_options_new)                                           \
	X(g_mime_format_options_set_newline_format)                            \
	X(g_mime_init)                                                         \
	X(g_mime_message_get_mime_part)                                        \
	X(g_mime_message_get_subject)                                          \
	X(g_mime_message_part_get_message)                                     \
	X(g_mime_message_part_get_type)                                        \
	X(g_mime_multipart_encrypted_get_type)                                 \
	X(g_mime_multipart_get_count)                                          \
	X(g_mime_multipart_get_part)                                           \
	X(g_mime_multipart_get_type)                                           \
	X(g_mime_multipart_signed_get_type)                                    \
	X(g_mime_object_get_content_type)                                      \
	X(g_mime_object_get_disposition)                                       \
	X(g_mime_object_write_to_stream)                                       \
	X(g_mime_parser_construct_message)                                     \
	X(g_mime_parser_new_with_stream)                                       \
	X(g_mime_parser_set_persist_stream)                                    \
	X(g_mime_part_get_content)                                             \
	X(g_mime_part_get_content_encoding)                                    \
	X(g_mime_part_get_filename)                                            \
	X(g_mime_part_get_type)                                                \
	X(g_mime_part_set_content_encoding)                                    \
	X(g_mime_stream_flush)                                                 \
	X(g_mime_stream_fs_get_type)                                           \
	X(g_mime_stream_fs_new)                                                \
	X(g_mime_stream_fs_new_with_bounds)                                    \
	X(g_mime_stream_fs_set_owner)                                          \
	X(g_mime_stream_length)                                                \
	X(g_mime_stream_mem_new_with_buffer)                                   \
	X(g_mime_stream_read)                                                  \
	X(g_mime_stream_reset)                                                 \
	X(g_mime_text_part_get_text)                                           \
	X(g_mime_text_part_get_type)                                           \
	X(g_mime_utils_header_decode_text)                                     \
	X(g_object_unref)                                                      \
	X(g_type_check_instance_cast)                                          \
	X(g_type_check_instance_is_a)                                          \
	X(internet_address_list_get_address)                                   \
	X(internet_address_list_length)                                        \
	X(internet_address_list_parse)                                         \
	X(internet_address_mailbox_get_idn_addr)                               \
	X(internet_address_mailbox_get_type)                                   \
	X(gmime_major_version)                                                 \
	X(gmime_minor_version)                                                 \
	X(gmime_micro_version)

struct sg_gmime_api {
	SG_GMIME_FUNCS(SG_DL_MEMBER)
};

SG_DL_DECLARE(sg_gmime, sg_gmime_api, "GMime")

#ifndef SG_GMIME_DL_IMPL
#define g_free (sg_gmime()->g_free)
#define g_mime_application_pkcs7_mime_get_type                                 \
	(sg_gmime()->g_mime_application_pkcs7_mime_get_type)
#define g_mime_content_type_get_media_subtype                                  \
	(sg_gmime()->g_mime_content_type_get_media_subtype)
#define g_mime_content_type_get_media_type                                     \
	(sg_gmime()->g_mime_content_type_get_media_type)
#define g_mime_content_type_get_parameter                                      \
	(sg_gmime()->g_mime_content_type_get_parameter)
#define g_mime_content_type_is_type (sg_gmime()->g_mime_content_type_is_type)
#define g_mime_content_type_parse   (sg_gmime()->g_mime_content_type_parse)
#define g_mime_data_wrapper_get_stream                                         \
	(sg_gmime()->g_mime_data_wrapper_get_stream)
#define g_mime_format_options_free (sg_gmime()->g_mime_format_options_free)
#define g_mime_format_options_new  (sg_gmime()->g_mime_format_options_new)
#define g_mime_format_options_set_newline_format                               \
	(sg_gmime()->g_mime_format_options_set_newline_format)
#define g_mime_init                  (sg_gmime()->g_mime_init)
#define g_mime_message_get_mime_part (sg_gmime()->g_mime_message_get_mime_part)
#define g_mime_message_get_subject   (sg_gmime()->g_mime_message_get_subject)
#define g_mime_message_part_get_message                                        \
	(sg_gmime()->g_mime_message_part_get_message)
#define g_mime_message_part_get_type (sg_gmime()->g_mime_message_part_get_type)
#define g_mime_multipart_encrypted_get_type                                    \
	(sg_gmime()->g_mime_multipart_encrypted_get_type)
#define g_mime_multipart_get_count (sg_gmime()->g_mime_multipart_get_count)
#define g_mime_multipart_get_part  (sg_gmime()->g_mime_multipart_get_part)
#define g_mime_multipart_get_type  (sg_gmime()->g_mime_multipart_get_type)
#define g_mime_multipart_signed_get_type                                       \
	(sg_gmime()->g_mime_multipart_signed_get_type)
#define g_mime_object_get_content_type                                         \
	(sg_gmime()->g_mime_object_get_content_type)
#define g_mime_object_get_disposition                                          \
	(sg_gmime()->g_mime_object_get_disposition)
#define g_mime_object_write_to_stream                                          \
	(sg_gmime()->g_mime_object_write_to_stream)
#define g_mime_parser_construct_message                                        \
	(sg_gmime()->g_mime_parser_construct_message)
#define g_mime_parser_new_with_stream                                          \
	(sg_gmime()->g_mime_parser_new_with_stream)
#define g_mime_parser_set_persist_stream                                       \
	(sg_gmime()->g_mime_parser_set_persist_stream)
#define g_mime_part_get_content (sg_gmime()->g_mime_part_get_content)
#define g_mime_part_get_content_encoding                                       \
	(sg_gmime()->g_mime_part_get_content_encoding)
#define g_mime_part_get_filename (sg_gmime()->g_mime_part_get_filename)
#define g_mime_part_get_type     (sg_gmime()->g_mime_part_get_type)
#define g_mime_part_set_content_encoding                                       \
	(sg_gmime()->g_mime_part_set_content_encoding)
#define g_mime_stream_flush       (sg_gmime()->g_mime_stream_flush)
#define g_mime_stream_fs_get_type (sg_gmime()->g_mime_stream_fs_get_type)
#define g_mime_stream_fs_new      (sg_gmime()->g_mime_stream_fs_new)
#define g_mime_stream_fs_new_with_bounds                                       \
	(sg_gmime()->g_mime_stream_fs_new_with_bounds)
#define g_mime_stream_fs_set_owner (sg_gmime()->g_mime_stream_fs_set_owner)
#define g_mime_stream_length       (sg_gmime()->g_mime_stream_length)
#define g_mime_stream_mem_new_with_buffer                                      \
	(sg_gmime()->g_mime_stream_mem_new_with_buffer)
#define g_mime_stream_read        (sg_gmime()->g_mime_stream_read)
#define g_mime_stream_reset       (sg_gmime()->g_mime_stream_reset)
#define g_mime_text_part_get_text (sg_gmime()->g_mime_text_part_get_text)
#define g_mime_text_part_get_type (sg_gmime()->g_mime_text_part_get_type)
#define g_mime_utils_header_decode_text                                        \
	(sg_gmime()->g_mime_utils_header_decode_text)
#define g_object_unref             (sg_gmime()->g_object_unref)
#define g_type_check_instance_cast (sg_gmime()->g_type_check_instance_cast)
#define g_type_check_instance_is_a (sg_gmime()->g_type_check_instance_is_a)
#define internet_address_list_get_address                                      \
	(sg_gmime()->internet_address_list_get_address)
#define internet_address_list_length (sg_gmime()->internet_address_list_length)
#define internet_address_list_parse  (sg_gmime()->internet_address_list_parse)
#define internet_address_mailbox_get_idn_addr                                  \
	(sg_gmime()->internet_address_mailbox_get_idn_addr)
#define internet_address_mailbox_get_type                                      \
	(sg_gmime()->internet_address_mailbox_get_type)
#define gmime_major_version (*sg_gmime()->gmime_major_version)
#define gmime_minor_version (*sg_gmime()->gmime_minor_version)
#define gmime_micro_version (*sg_gmime()->gmime_micro_version)
#endif

#endif
