/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "hex-binary.h"
#include "istream-private.h"
#include "ostream.h"
#include "iostream-temp.h"
#include "sqlbox-storage.h"

#include <openssl/evp.h>

/* A stored body is never served unchecked: its SHA-256 (taken when it was
   saved) is compared before the first byte reaches anyone. A small body is
   read whole and checked; a large one is first read through once to check
   it, chunk by chunk, and then streamed, so that it's never held whole in
   memory. */

struct sqlbox_body_istream {
	struct istream_private istream;
	struct sqlbox_body *body;
};

/* What went wrong reading a body. Every failure goes through here, so
   that its cause reaches the log and its class (corrupt, temporary,
   internal) the storage error. */
struct sqlbox_body_failure {
	enum sqlbox_body_error type;
	const char *error;
};

static void ATTR_FORMAT(3, 4)
sqlbox_body_fail(struct sqlbox_body_failure *failure,
		 enum sqlbox_body_error type, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	failure->type = type;
	failure->error = t_strdup_vprintf(fmt, args);
	va_end(args);
}

/* A failed body_read(): ret 0 is a body shorter than recorded, -1 the
   database's error. */
static void
sqlbox_body_fail_read(struct sqlbox_body_failure *failure,
		      struct sqlbox_body *body, ssize_t ret, uoff_t offset)
{
	const char *error;

	if (ret == 0) {
		sqlbox_body_fail(failure, SQLBOX_BODY_ERROR_CORRUPT,
			"shorter than its recorded size (ends at %"PRIuUOFF_T
			" of %"PRIuUOFF_T" bytes)", offset, body->size);
		return;
	}
	switch (sqlbox_db_get_error(body->db, &error)) {
	case SQLBOX_DB_ERROR_CORRUPT:
		sqlbox_body_fail(failure, SQLBOX_BODY_ERROR_CORRUPT,
				 "%s", error);
		break;
	case SQLBOX_DB_ERROR_TEMP:
	case SQLBOX_DB_ERROR_LOCKED:
		sqlbox_body_fail(failure, SQLBOX_BODY_ERROR_TEMP,
				 "Reading failed: %s", error);
		break;
	default:
		sqlbox_body_fail(failure, SQLBOX_BODY_ERROR_INTERNAL,
				 "Reading failed: %s", error);
		break;
	}
}

void sqlbox_sha256(const void *data, size_t size,
		   unsigned char digest_r[SQLBOX_SHA256_SIZE])
{
	unsigned int len = SQLBOX_SHA256_SIZE;

	if (EVP_Digest(data, size, digest_r, &len, EVP_sha256(), NULL) != 1)
		i_fatal("sqlbox: EVP_Digest(sha256) failed");
}

static ssize_t sqlbox_body_istream_read(struct istream_private *stream)
{
	struct sqlbox_body_istream *bstream =
		container_of(stream, struct sqlbox_body_istream, istream);
	struct sqlbox_body *body = bstream->body;
	uoff_t offset;
	size_t avail;
	ssize_t ret;

	offset = stream->istream.v_offset + (stream->pos - stream->skip);
	if (offset >= body->size) {
		stream->istream.eof = TRUE;
		return -1;
	}
	if (!i_stream_try_alloc(stream, I_MIN(body->size - offset,
					      IO_BLOCK_SIZE), &avail))
		return -2;
	avail = I_MIN(avail, body->size - offset);
	ret = sqlbox_db_body_read(body, offset, stream->w_buffer + stream->pos,
				  avail);
	if (ret <= 0) {
		struct sqlbox_body_failure failure;

		sqlbox_body_fail_read(&failure, body, ret, offset);
		io_stream_set_error(&stream->iostream, "Body %"PRId64"%s: %s",
			body->id, failure.type == SQLBOX_BODY_ERROR_CORRUPT ?
			" is corrupted" : "", failure.error);
		stream->istream.stream_errno = EIO;
		return -1;
	}
	stream->pos += ret;
	return ret;
}

static void sqlbox_body_istream_seek(struct istream_private *stream,
				     uoff_t v_offset, bool mark ATTR_UNUSED)
{
	stream->istream.v_offset = v_offset;
	stream->skip = stream->pos = 0;
}

static int sqlbox_body_istream_stat(struct istream_private *stream,
				    bool exact ATTR_UNUSED)
{
	struct sqlbox_body_istream *bstream =
		container_of(stream, struct sqlbox_body_istream, istream);

	stream->statbuf.st_size = bstream->body->size;
	return 0;
}

static void sqlbox_body_istream_destroy(struct iostream_private *stream)
{
	struct sqlbox_body_istream *bstream =
		container_of(stream, struct sqlbox_body_istream,
			     istream.iostream);

	sqlbox_db_body_close(&bstream->body);
	i_stream_free_buffer(&bstream->istream);
}

static struct istream *sqlbox_body_istream_create(struct sqlbox_body *body)
{
	struct sqlbox_body_istream *bstream;

	bstream = i_new(struct sqlbox_body_istream, 1);
	bstream->body = body;
	bstream->istream.max_buffer_size = IO_BLOCK_SIZE * 8;
	bstream->istream.read = sqlbox_body_istream_read;
	bstream->istream.seek = sqlbox_body_istream_seek;
	bstream->istream.stat = sqlbox_body_istream_stat;
	bstream->istream.iostream.destroy = sqlbox_body_istream_destroy;
	bstream->istream.istream.readable_fd = FALSE;
	bstream->istream.istream.blocking = TRUE;
	bstream->istream.istream.seekable = TRUE;
	return i_stream_create(&bstream->istream, NULL, -1, 0);
}

/* Reads a large body through once, taking its SHA-256 and, with output,
   copying it there. */
static int
sqlbox_body_read_all(struct sqlbox_body *body, struct ostream *output,
		     unsigned char digest_r[SQLBOX_SHA256_SIZE],
		     struct sqlbox_body_failure *failure)
{
	unsigned char *buf;
	unsigned int len = SQLBOX_SHA256_SIZE;
	uoff_t offset = 0;
	EVP_MD_CTX *md;
	ssize_t ret;
	int result = 0;

	buf = i_malloc(IO_BLOCK_SIZE * 16);
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		i_fatal("sqlbox: EVP_DigestInit_ex(sha256) failed");
	while (offset < body->size) {
		ret = sqlbox_db_body_read(body, offset, buf,
					  IO_BLOCK_SIZE * 16);
		if (ret <= 0) {
			sqlbox_body_fail_read(failure, body, ret, offset);
			result = -1;
			break;
		}
		if (EVP_DigestUpdate(md, buf, ret) != 1)
			i_fatal("sqlbox: EVP_DigestUpdate() failed");
		if (output != NULL)
			o_stream_nsend(output, buf, ret);
		offset += ret;
	}
	if (result == 0 && EVP_DigestFinal_ex(md, digest_r, &len) != 1)
		i_fatal("sqlbox: EVP_DigestFinal_ex() failed");
	EVP_MD_CTX_free(md);
	i_free(buf);
	return result;
}

static void sqlbox_body_free_callback(struct sqlbox_body *body)
{
	sqlbox_db_body_close(&body);
}

/* Reads a large body once, checking it and copying it to a temporary file
   that is served afterwards. */
static int
sqlbox_body_spool(struct sqlbox_body *body, const char *temp_prefix,
		  unsigned char digest_r[SQLBOX_SHA256_SIZE],
		  struct istream **input_r, struct sqlbox_body_failure *failure)
{
	struct ostream *output;

	output = iostream_temp_create_sized(temp_prefix, 0, "sqlbox body",
					    IO_BLOCK_SIZE);
	if (sqlbox_body_read_all(body, output, digest_r, failure) < 0) {
		o_stream_destroy(&output);
		return -1;
	}
	if (o_stream_finish(output) < 0) {
		sqlbox_body_fail(failure, ENOSPACE(output->stream_errno) ?
				 SQLBOX_BODY_ERROR_TEMP :
				 SQLBOX_BODY_ERROR_INTERNAL,
				 "Spooling failed: write(%s) failed: %s",
				 o_stream_get_name(output),
				 o_stream_get_error(output));
		o_stream_destroy(&output);
		return -1;
	}
	*input_r = iostream_temp_finish(&output, IO_BLOCK_SIZE);
	return 0;
}

/* Opens and checks the body; the stream to serve it from in *input_r
   (NULL: serve it from the body itself). */
static int
sqlbox_body_check(struct sqlbox_body *body, const char *temp_prefix,
		  struct istream **input_r,
		  struct sqlbox_body_failure *failure)
{
	unsigned char digest[SQLBOX_SHA256_SIZE];

	*input_r = NULL;
	if (body->data != NULL) {
		if (body->data_size != body->size) {
			sqlbox_body_fail(failure, SQLBOX_BODY_ERROR_CORRUPT,
				"size %zu differs from the recorded "
				"%"PRIuUOFF_T, body->data_size, body->size);
			return -1;
		}
		sqlbox_sha256(body->data, body->data_size, digest);
	} else if (body->db->v->spool_large_bodies && temp_prefix != NULL) {
		if (sqlbox_body_spool(body, temp_prefix, digest, input_r,
				      failure) < 0)
			return -1;
	} else if (sqlbox_body_read_all(body, NULL, digest, failure) < 0) {
		return -1;
	}
	if (memcmp(digest, body->sha256, sizeof(digest)) != 0) {
		sqlbox_body_fail(failure, SQLBOX_BODY_ERROR_CORRUPT,
			"SHA-256 %s doesn't match the recorded %s",
			binary_to_hex(digest, sizeof(digest)),
			binary_to_hex(body->sha256, sizeof(body->sha256)));
		if (*input_r != NULL)
			i_stream_unref(input_r);
		return -1;
	}
	return 0;
}

int sqlbox_istream_open(struct sqlbox_db *db, int64_t body_id,
			const struct sqlbox_body_owner *owner,
			const char *temp_prefix, struct istream **input_r,
			enum sqlbox_body_error *error_type_r,
			const char **error_r)
{
	struct sqlbox_body_failure failure;
	struct sqlbox_body *body;
	struct istream *input;
	const char *error;
	int ret;

	*error_type_r = SQLBOX_BODY_ERROR_NONE;
	if ((ret = sqlbox_db_body_open(db, body_id, owner, &body)) <= 0) {
		if (ret < 0) {
			enum sqlbox_db_error db_error =
				sqlbox_db_get_error(db, &error);

			*error_type_r = db_error == SQLBOX_DB_ERROR_TEMP ||
				db_error == SQLBOX_DB_ERROR_LOCKED ?
				SQLBOX_BODY_ERROR_TEMP :
				SQLBOX_BODY_ERROR_INTERNAL;
			*error_r = t_strdup_printf("Body %"PRId64": "
				"Opening failed: %s", body_id, error);
		}
		return ret;
	}
	i_zero(&failure);
	if (sqlbox_body_check(body, temp_prefix, &input, &failure) < 0) {
		*error_type_r = failure.type;
		*error_r = t_strdup_printf("Body %"PRId64"%s: %s", body_id,
			failure.type == SQLBOX_BODY_ERROR_CORRUPT ?
			" is corrupted" : "", failure.error);
		sqlbox_db_body_close(&body);
		return -1;
	}

	if (input != NULL) {
		/* spooled: served from the temporary file */
		sqlbox_db_body_close(&body);
	} else if (body->data != NULL) {
		input = i_stream_create_from_data(body->data, body->data_size);
		i_stream_add_destroy_callback(input, sqlbox_body_free_callback,
					      body);
	} else {
		input = sqlbox_body_istream_create(body);
	}
	i_stream_set_name(input, t_strdup_printf("sqlbox body %"PRId64,
						 body_id));
	*input_r = input;
	return 1;
}
