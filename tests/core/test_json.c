/* Tests of the JSON parser and writer: JSONTestSuite-style cases, round trips, limits. */
#include "harness.h"

#include <math.h>
#include <mira/mira.h>
#include <stdlib.h>

/* Parse and return the tree (NULL on failure, error message kept in last_msg). */
static char last_msg[512];
static mira_error_code last_code;

static mira_json *parse_n(const char *s, size_t n)
{
    mira_error *err = NULL;
    mira_json *v = mira_json_parse(s, n, &err);
    last_msg[0] = '\0';
    last_code = MIRA_OK;
    if (!v) {
        snprintf(last_msg, sizeof last_msg, "%s", mira_error_get_message(err));
        last_code = mira_error_get_code(err);
        mira_error_free(err);
    }
    return v;
}

static mira_json *parse(const char *s)
{
    return parse_n(s, strlen(s));
}

static bool accepts(const char *s, size_t n)
{
    mira_json *v = parse_n(s, n);
    mira_json_free(v);
    return v != NULL;
}

#define ACCEPT(s) CHECK(accepts(s, sizeof(s) - 1))
#define REJECT(s)                                                                                  \
    do {                                                                                           \
        CHECK(!accepts(s, sizeof(s) - 1));                                                         \
        CHECK(strstr(last_msg, "offset") != NULL);                                                 \
    } while (0)

/* ------------------------------------------------------------------ y_*: must accept */

TEST(y_structure)
{
    ACCEPT("[]");                        /* y_array_empty */
    ACCEPT("{}");                        /* y_object_empty */
    ACCEPT("[[]   ]");                   /* y_array_arraysWithSpaces */
    ACCEPT("[\"\"]");                    /* y_array_empty-string */
    ACCEPT("[1,null,null,null,2]");      /* y_array_with_several_null */
    ACCEPT("[1\n]");                     /* y_array_with_trailing_space */
    ACCEPT(" [1]");                      /* y_array_with_leading_space */
    ACCEPT("[null, 1, \"1\", {}]");      /* y_array_heterogeneous */
    ACCEPT("{\"a\":\"b\",\"a\":\"c\"}"); /* y_object_duplicated_key */
    ACCEPT("{\"\":0}");                  /* y_object_empty_key */
    ACCEPT("{\"x\":[{\"id\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}], \"id\": "
           "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"); /* y_object_long_strings */
    ACCEPT("\"asd\"");                                       /* y_structure_lonely_string */
    ACCEPT("2");                                             /* y_structure_lonely_int */
    ACCEPT("-0.1");                                          /* y_structure_lonely_negative_real */
    ACCEPT("null");                                          /* y_structure_lonely_null */
    ACCEPT("true");                                          /* y_structure_lonely_true */
    ACCEPT("false");                                         /* y_structure_lonely_false */
    ACCEPT("[] ");                                           /* trailing whitespace */
    ACCEPT(" \t\r\n[\t]\r\n ");                              /* y_structure_whitespace_array */
    ACCEPT("[\"\\u0000\"]");                                 /* y_string_escaped_null */
}

TEST(y_numbers)
{
    ACCEPT("[123e65]"); /* big exponent */
    ACCEPT("[0e+1]");   /* y_number_0e+1 */
    ACCEPT("[0e1]");    /* y_number_0e1 */
    ACCEPT("[ 4]");     /* y_number_after_space */
    ACCEPT("[-0.000000000000000000000000000000000000000000000000000000000000000000000000000001]");
    ACCEPT("[20e1]");                           /* y_number_int_with_exp */
    ACCEPT("[-0]");                             /* y_number_minus_zero */
    ACCEPT("[-123]");                           /* y_number_negative_int */
    ACCEPT("[-1]");                             /* y_number_negative_one */
    ACCEPT("[1E22]");                           /* y_number_real_capital_e */
    ACCEPT("[1E-2]");                           /* y_number_real_capital_e_neg_exp */
    ACCEPT("[1E+2]");                           /* y_number_real_capital_e_pos_exp */
    ACCEPT("[123.456e78]");                     /* y_number_real_exponent */
    ACCEPT("[1.5e+9999]");                      /* i_number_huge_exp: accepted, value is infinite */
    ACCEPT("[123456789012345678901234567890]"); /* i_number_too_big_pos_int: accepted, inexact */
}

TEST(y_strings)
{
    ACCEPT("[\"\\u0060\\u012a\\u12AB\"]");        /* y_string_1_2_3_bytes_UTF-8_sequences */
    ACCEPT("[\"\\uD801\\udc37\"]");               /* y_string_accepted_surrogate_pair */
    ACCEPT("[\"\\ud83d\\ude39\\ud83d\\udc8d\"]"); /* y_string_accepted_surrogate_pairs */
    ACCEPT("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]");   /* y_string_allowed_escapes */
    ACCEPT("[\"\\\\u0000\"]");                    /* y_string_backslash_and_u_escaped_zero */
    ACCEPT("[\"\\\"\"]");                         /* y_string_backslash_doublequotes */
    ACCEPT("[\"a/*b*/c/*d//e\"]");                /* y_string_comments */
    ACCEPT("[\"\\\\a\"]");                        /* y_string_double_escape_a */
    ACCEPT("[\"\\u0012\"]");                      /* y_string_escaped_control_character */
    ACCEPT("[\"\\uFFFF\"]");                      /* y_string_escaped_noncharacter */
    ACCEPT("[\"\xe2\x82\xac\xf0\x9d\x84\x9e\"]"); /* y_string_utf8 */
    ACCEPT("[\"\xf4\x8f\xbf\xbf\"]");             /* y_string_last_surrogates_1_and_2 (U+10FFFF) */
    ACCEPT("[\"\xef\xbf\xbf\"]");                 /* y_string_nonCharacterInUTF-8_U+FFFF */
    ACCEPT("[\"\x7f\"]");                         /* y_string_with_del_character */
    ACCEPT("[\"\\u2028\"]");                      /* y_string_u+2028_line_sep */
    ACCEPT("[\"\xe2\x80\xa8\"]");                 /* y_string_unescaped_u+2028 */
}

/* ------------------------------------------------------------------ n_*: must reject */

TEST(n_structure)
{
    REJECT("");                  /* n_structure_no_data */
    REJECT(" ");                 /* n_structure_whitespace only */
    REJECT("[1,]");              /* n_array_extra_comma */
    REJECT("[1,,2]");            /* n_array_double_extra_comma */
    REJECT("[,1]");              /* n_array_just_comma-like: leading comma */
    REJECT("[1 true]");          /* n_array_1_true_without_comma */
    REJECT("[\"\": 1]");         /* n_array_colon_instead_of_comma */
    REJECT("[1");                /* n_array_unclosed */
    REJECT("[1,");               /* n_array_unclosed_trailing_comma */
    REJECT("[\"a\",\n4\n,1,");   /* n_array_newlines_unclosed */
    REJECT("]");                 /* n_structure_close_unopened_array */
    REJECT("[]]");               /* n_structure_array_with_extra_array_close */
    REJECT("{\"a\":1,}");        /* n_object_trailing_comma */
    REJECT("{\"a\" 1}");         /* n_object_missing_colon */
    REJECT("{\"a\":}");          /* n_object_missing_value */
    REJECT("{1:1}");             /* n_object_non_string_key */
    REJECT("{'a':0}");           /* n_object_single_quote */
    REJECT("{a:0}");             /* n_object_unquoted_key */
    REJECT("{\"a\":\"a\" 123}"); /* n_object_missing_comma-like */
    REJECT("{\"a\":1}/**/");     /* n_object_trailing_comment */
    REJECT("{\"a\":1}//");       /* n_object_trailing_comment_slash_open */
    REJECT("[1]/* */");          /* comments are not JSON */
    REJECT("[1]x");              /* trailing garbage */
    REJECT("{} {}");             /* two top-level values */
    REJECT("[\x00]");            /* n_structure_null-byte-outside-string */
    REJECT("\xef\xbb\xbf{}");    /* n_structure_UTF8_BOM_no_data / i_structure_UTF-8_BOM */
    REJECT("[nul]");             /* n_incomplete_null */
    REJECT("[tru]");             /* n_incomplete_true */
    REJECT("[True]");            /* n_structure_capitalized_True */
    REJECT("[\xff]");            /* n_structure_single_invalid_UTF-8 outside a string */
    REJECT("\xe5");              /* n_structure_incomplete_UTF8_BOM-like: lone lead byte */
    REJECT("[\"\x0b\"]");        /* n_string_unescaped_ctrl_char (vertical tab) */
    REJECT("{\"a\":\"b\"}#");    /* n_structure_trailing_# */
    REJECT("[\f]");              /* n_structure_whitespace_formfeed */
    REJECT("[\xc2\xa0]");        /* NBSP is not JSON whitespace */
}

TEST(n_numbers)
{
    REJECT("[012]");       /* n_number_with_leading_zero */
    REJECT("[-012]");      /* n_number_neg_int_starting_with_zero-like */
    REJECT("[00]");        /* leading zero */
    REJECT("[-01]");       /* n_number_-01 */
    REJECT("[1.]");        /* n_number_real_without_fractional_part */
    REJECT("[.2]");        /* n_number_starting_with_dot */
    REJECT("[2.e3]");      /* n_number_2.e3 */
    REJECT("[1e]");        /* n_number_1.0e */
    REJECT("[1e+]");       /* n_number_0_capital_E+ */
    REJECT("[+1]");        /* n_number_+1 */
    REJECT("[-]");         /* n_number_just_minus */
    REJECT("[- 1]");       /* n_number_minus_space_1 */
    REJECT("[0x1]");       /* n_number_hex_1_digit */
    REJECT("[NaN]");       /* n_number_NaN */
    REJECT("[Infinity]");  /* n_number_infinity */
    REJECT("[-Infinity]"); /* n_number_minus_infinity */
    REJECT("[1.0e+]");     /* n_number_1.0e+ */
    REJECT("[1 000.0]");   /* n_number_1_000 */
    REJECT("[0.3e]");      /* n_number_0.3e */
    REJECT("[1ea]");       /* n_number_1ea */
}

TEST(n_strings)
{
    REJECT("[\"\\x00\"]");                    /* n_string_escape_x */
    REJECT("[\"\\a\"]");                      /* n_string_invalid_backslash_esc */
    REJECT("[\"\\'\"]");                      /* \' is not an escape */
    REJECT("[\"\\u00A\"]");                   /* n_string_1_surrogate_then_escape_u1 / short \u */
    REJECT("[\"\\uqqqq\"]");                  /* n_string_invalid_unicode_escape */
    REJECT("[\"\\u\"]");                      /* n_string_incomplete_escaped_character */
    REJECT("[\"\\");                          /* unterminated after a backslash */
    REJECT("[\"a");                           /* n_string_single_doublequote-like: unterminated */
    REJECT("['single quote']");               /* n_string_single_quote */
    REJECT("[\"new\nline\"]");                /* n_string_unescaped_newline */
    REJECT("[\"\t\"]");                       /* n_string_unescaped_tab */
    REJECT("[\"a\x00\"]");                    /* n_string_unescaped_ctrl_char (NUL) */
    REJECT("[\"\\\x00\"]");                   /* n_string_backslash_00 */
    REJECT("[\"\\uD800\"]");                  /* i_string_1st_surrogate_but_2nd_missing: rejected */
    REJECT("[\"\\uDADA\"]");                  /* lone high surrogate */
    REJECT("[\"\\uD888\\u1234\"]");           /* i_string_1st_valid_surrogate_2nd_invalid */
    REJECT("[\"\\uDd1e\\uD834\"]");           /* i_string_inverted_surrogates_U+1D11E */
    REJECT("[\"\\uDFAA\"]");                  /* i_string_lone_second_surrogate */
    REJECT("[\"\\ud800abc\"]");               /* i_string_incomplete_surrogate_and_escape_valid */
    REJECT("[\"\\uD800\\n\"]");               /* i_string_incomplete_surrogate_pair */
    REJECT("[\"\xff\"]");                     /* i_string_invalid_utf-8 / n_string_invalid_utf8 */
    REJECT("[\"\xe0\xff\"]");                 /* truncated 3-byte sequence */
    REJECT("[\"\xc0\xaf\"]");                 /* i_string_overlong_sequence_2_bytes */
    REJECT("[\"\xfc\x83\xbf\xbf\xbf\xbf\"]"); /* i_string_overlong_sequence_6_bytes */
    REJECT("[\"\xed\xa0\x80\"]");     /* i_string_UTF-8_invalid_sequence: encoded surrogate */
    REJECT("[\"\xf4\xbf\xbf\xbf\"]"); /* above U+10FFFF */
    REJECT("[\"\x81\"]");             /* i_string_lone_utf8_continuation_byte */
    REJECT("[\"\xe9\"]");             /* i_string_iso_latin_1 */
    REJECT("[\"\xf0\x9f\x98\"]");     /* i_string_truncated-utf-8 */
}

TEST(error_messages_name_offsets)
{
    CHECK(!parse("{\"a\":1 \"b\":2}"));
    CHECK_EQ_STR(last_msg, "JSON: expected ',' or '}' at offset 7 (found '\"')");
    CHECK(!parse("[1,2"));
    CHECK_EQ_STR(last_msg, "JSON: expected ',' or ']' at offset 4 (found end of input)");
    CHECK(!parse("[1,2,]"));
    CHECK_EQ_STR(last_msg, "JSON: trailing comma before ']' at offset 5");
    CHECK(!parse("[\"ab\xff\"]"));
    CHECK_EQ_STR(last_msg, "JSON: invalid UTF-8 (byte 0xFF) at offset 4");
    CHECK(!parse("  \xff"));
    CHECK_EQ_STR(last_msg, "JSON: invalid UTF-8 (byte 0xFF) at offset 2");
    CHECK(!parse("[0123]"));
    CHECK_EQ_STR(last_msg, "JSON: leading zero in number at offset 1");
    CHECK(!parse("[\"x\\uD800\"]"));
    CHECK_EQ_STR(last_msg,
                 "JSON: high surrogate \\uD800 not followed by a low surrogate at offset 3");
    CHECK(!parse("\"abc"));
    CHECK_EQ_STR(last_msg, "JSON: unterminated string starting at offset 0");
    CHECK_EQ_INT(last_code, MIRA_ERR_INVALID);
}

/* ------------------------------------------------------------------ tree access */

TEST(tree_access)
{
    mira_json *v = parse("{\"a\": [1, 2.5, -3e2, \"x\"], \"b\": {\"c\": null}, \"a\": true, "
                         "\"t\": true, \"f\": false}");
    CHECK(v != NULL);
    if (!v)
        return;
    CHECK_EQ_INT(mira_json_get_type(v), MIRA_JSON_OBJECT);
    CHECK_EQ_INT(mira_json_count(v), 5);
    CHECK_EQ_STR(mira_json_key_at(v, 0), "a");
    CHECK_EQ_STR(mira_json_key_at(v, 2), "a");
    CHECK(mira_json_key_at(v, 5) == NULL);
    const mira_json *a = mira_json_get(v, "a"); /* the first of duplicate keys */
    CHECK_EQ_INT(mira_json_get_type(a), MIRA_JSON_ARRAY);
    CHECK_EQ_INT(mira_json_count(a), 4);
    CHECK(mira_json_get_number(mira_json_at(a, 0)) == 1);
    CHECK(mira_json_get_number(mira_json_at(a, 1)) == 2.5);
    CHECK(mira_json_get_number(mira_json_at(a, 2)) == -300);
    CHECK_EQ_STR(mira_json_get_number_text(mira_json_at(a, 2)), "-3e2");
    CHECK(mira_json_get_number_text(mira_json_at(a, 3)) == NULL);
    CHECK_EQ_STR(mira_json_get_string(mira_json_at(a, 3), NULL), "x");
    CHECK(mira_json_at(a, 4) == NULL);
    CHECK(mira_json_get_string(a, NULL) == NULL);
    CHECK(mira_json_get_number(a) == 0);
    CHECK_EQ_INT(mira_json_count(mira_json_at(a, 0)), 0);
    const mira_json *b = mira_json_get(v, "b");
    CHECK_EQ_INT(mira_json_get_type(mira_json_get(b, "c")), MIRA_JSON_NULL);
    CHECK(mira_json_get(b, "zz") == NULL);
    CHECK(mira_json_get(a, "c") == NULL);
    CHECK_EQ_INT(mira_json_get_type(mira_json_get(v, "t")), MIRA_JSON_TRUE);
    CHECK_EQ_INT(mira_json_get_type(mira_json_get(v, "f")), MIRA_JSON_FALSE);
    /* freeing a node that is not the root does nothing */
    mira_json_free(mira_json_at(a, 0));
    mira_json_free(v);
    mira_json_free(NULL);
}

TEST(unicode_escapes)
{
    mira_json *v = parse("[\"\\u0041\\u00e9\\u20AC\\ud834\\udd1e\\u0000z\", \"\\/\\b\"]");
    CHECK(v != NULL);
    if (!v)
        return;
    size_t len = 0;
    const char *s = mira_json_get_string(mira_json_at(v, 0), &len);
    static const char want[] = "A\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\0z";
    CHECK_EQ_INT(len, sizeof want - 1);
    CHECK(s && memcmp(s, want, sizeof want) == 0);
    s = mira_json_get_string(mira_json_at(v, 1), &len);
    CHECK_EQ_INT(len, 2);
    CHECK_EQ_STR(s, "/\b");
    mira_json_free(v);
}

TEST(depth_limit)
{
    char buf[2 * 600 + 1];
    /* 512 nested arrays are fine */
    memset(buf, '[', 512);
    memset(buf + 512, ']', 512);
    CHECK(accepts(buf, 1024));
    /* 513 are not */
    memset(buf, '[', 513);
    memset(buf + 513, ']', 513);
    CHECK(!accepts(buf, 1026));
    CHECK_EQ_INT(last_code, MIRA_ERR_LIMIT);
    CHECK_EQ_STR(last_msg, "JSON: nesting deeper than 512 at offset 512");
    /* objects count too */
    char *deep = malloc(600 * 6 + 2);
    size_t n = 0;
    for (int i = 0; i < 600; i++) {
        memcpy(deep + n, "{\"a\":", 5);
        n += 5;
    }
    deep[n++] = '1';
    for (int i = 0; i < 600; i++)
        deep[n++] = '}';
    CHECK(!accepts(deep, n));
    CHECK_EQ_INT(last_code, MIRA_ERR_LIMIT);
    /* a long unclosed sequence of '[' is rejected without deep recursion */
    free(deep);
    char *many = malloc(100000);
    memset(many, '[', 100000);
    CHECK(!accepts(many, 100000));
    free(many);
}

/* ------------------------------------------------------------------ the writer */

static char *finish(mira_json_writer *w)
{
    mira_error *err = NULL;
    char *s = mira_json_writer_finish(w, NULL, &err);
    if (!s) {
        fprintf(stderr, "finish: %s\n", mira_error_get_message(err));
        mira_error_free(err);
    }
    mira_json_writer_free(w);
    return s;
}

TEST(writer_compact)
{
    mira_json_writer *w = mira_json_writer_new(false);
    mira_json_begin_object(w);
    mira_json_key(w, "a");
    mira_json_begin_array(w);
    mira_json_int(w, -5);
    mira_json_uint(w, UINT64_MAX);
    mira_json_int(w, INT64_MIN);
    mira_json_double(w, 0.1);
    mira_json_double(w, NAN);
    mira_json_bool(w, true);
    mira_json_null(w);
    mira_json_end_array(w);
    mira_json_key(w, "s\"k");
    mira_json_cstring(w, "tab\there \"q\" \\ \x01 \xc3\xa9 \xff");
    mira_json_key(w, "e");
    mira_json_begin_object(w);
    mira_json_end_object(w);
    mira_json_key(w, "r");
    mira_json_raw(w, "[1,2]", 5);
    mira_json_key(w, "n");
    mira_json_number_text(w, "1.50e3", 6);
    mira_json_end_object(w);
    char *s = finish(w);
    CHECK_EQ_STR(s, "{\"a\":[-5,18446744073709551615,-9223372036854775808,0.1,null,true,null],"
                    "\"s\\\"k\":\"tab\\there \\\"q\\\" \\\\ \\u0001 \xc3\xa9 \xef\xbf\xbd\","
                    "\"e\":{},\"r\":[1,2],\"n\":1.50e3}");
    mira_free(s);
}

TEST(writer_pretty)
{
    mira_json_writer *w = mira_json_writer_new(true);
    mira_json_begin_object(w);
    mira_json_key(w, "a");
    mira_json_begin_array(w);
    mira_json_int(w, 1);
    mira_json_begin_object(w);
    mira_json_key(w, "b");
    mira_json_null(w);
    mira_json_end_object(w);
    mira_json_end_array(w);
    mira_json_key(w, "c");
    mira_json_begin_array(w);
    mira_json_end_array(w);
    mira_json_end_object(w);
    char *s = finish(w);
    CHECK_EQ_STR(s, "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": []\n}");
    mira_free(s);
}

TEST(writer_misuse)
{
    mira_error *err = NULL;
    mira_json_writer *w = mira_json_writer_new(false);
    mira_json_begin_object(w);
    mira_json_int(w, 1); /* no key */
    mira_json_end_object(w);
    CHECK(mira_json_writer_finish(w, NULL, &err) == NULL);
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    err = NULL;
    /* the writer is empty again and usable */
    mira_json_begin_array(w);
    CHECK(mira_json_writer_finish(w, NULL, &err) == NULL); /* unclosed */
    CHECK(strstr(mira_error_get_message(err), "unclosed") != NULL);
    mira_error_free(err);
    err = NULL;
    mira_json_int(w, 1);
    mira_json_int(w, 2); /* two top-level values */
    CHECK(mira_json_writer_finish(w, NULL, &err) == NULL);
    mira_error_free(err);
    err = NULL;
    mira_json_begin_array(w);
    mira_json_key(w, "k"); /* key in an array */
    mira_json_end_array(w);
    CHECK(mira_json_writer_finish(w, NULL, &err) == NULL);
    mira_error_free(err);
    mira_json_writer_free(w);
    mira_json_writer_free(NULL);
}

TEST(writer_oom)
{
    for (long n = 1; n < 8; n++) {
        mira_json_writer *w = mira_json_writer_new(false);
        if (!w)
            continue;
        mira_alloc_fail_after(n);
        mira_json_begin_array(w);
        for (int i = 0; i < 200; i++)
            mira_json_cstring(w, "some text to make the buffer grow");
        mira_json_end_array(w);
        mira_error *err = NULL;
        char *s = mira_json_writer_finish(w, NULL, &err);
        mira_alloc_fail_after(0);
        CHECK(s == NULL);
        CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_NOMEM);
        mira_error_free(err);
        mira_json_writer_free(w);
    }
}

TEST(parser_oom)
{
    const char *doc = "{\"a\":[1,2,3,{\"b\":\"text\"}],\"c\":\"\\u00e9\"}";
    for (long n = 1; n < 10; n++) {
        mira_alloc_fail_after(n);
        mira_error *err = NULL;
        mira_json *v = mira_json_parse(doc, strlen(doc), &err);
        mira_alloc_fail_after(0);
        if (v) {
            mira_json_free(v);
            continue;
        }
        CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_NOMEM);
        mira_error_free(err);
    }
}

/* ------------------------------------------------------------------ numbers */

static const char *fmt_double(double d)
{
    static char out[64];
    mira_json_writer *w = mira_json_writer_new(false);
    mira_json_double(w, d);
    char *s = finish(w);
    snprintf(out, sizeof out, "%s", s ? s : "(null)");
    mira_free(s);
    return out;
}

TEST(double_shortest)
{
    CHECK_EQ_STR(fmt_double(0.1), "0.1");
    CHECK_EQ_STR(fmt_double(1.0), "1");
    CHECK_EQ_STR(fmt_double(-2.5), "-2.5");
    CHECK_EQ_STR(fmt_double(1e300), "1e+300");
    CHECK_EQ_STR(fmt_double(0.1 + 0.2), "0.30000000000000004");
    CHECK_EQ_STR(fmt_double(1.0 / 3), "0.3333333333333333");
    CHECK_EQ_STR(fmt_double(123456789012345680.0), "1.2345678901234568e+17");
    CHECK_EQ_STR(fmt_double(INFINITY), "null");
    CHECK_EQ_STR(fmt_double(-0.0), "-0");
    /* every written double reads back exactly */
    unsigned long long x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (!isfinite(d))
            continue;
        const char *s = fmt_double(d);
        mira_json *v = parse(s);
        CHECK(v && mira_json_get_number(v) == d);
        mira_json_free(v);
    }
}

/* ------------------------------------------------------------------ round trips */

static void write_tree(mira_json_writer *w, const mira_json *v)
{
    switch (mira_json_get_type(v)) {
    case MIRA_JSON_NULL:
        mira_json_null(w);
        break;
    case MIRA_JSON_FALSE:
        mira_json_bool(w, false);
        break;
    case MIRA_JSON_TRUE:
        mira_json_bool(w, true);
        break;
    case MIRA_JSON_NUMBER: {
        const char *t = mira_json_get_number_text(v);
        mira_json_number_text(w, t, strlen(t));
        break;
    }
    case MIRA_JSON_STRING: {
        size_t len;
        const char *s = mira_json_get_string(v, &len);
        mira_json_string(w, s, len);
        break;
    }
    case MIRA_JSON_ARRAY:
        mira_json_begin_array(w);
        for (size_t i = 0; i < mira_json_count(v); i++)
            write_tree(w, mira_json_at(v, i));
        mira_json_end_array(w);
        break;
    case MIRA_JSON_OBJECT:
        mira_json_begin_object(w);
        for (size_t i = 0; i < mira_json_count(v); i++) {
            mira_json_key(w, mira_json_key_at(v, i));
            write_tree(w, mira_json_at(v, i));
        }
        mira_json_end_object(w);
        break;
    }
}

static char *reserialize(const char *in, bool pretty)
{
    mira_json *v = parse(in);
    if (!v)
        return NULL;
    mira_json_writer *w = mira_json_writer_new(pretty);
    write_tree(w, v);
    mira_json_free(v);
    return finish(w);
}

TEST(round_trip)
{
    static const char *docs[] = {
        "{\"a\":[1,-2.5e-3,true,false,null,\"\\u0000\\n\\\"\\\\\"],\"b\":{},\"c\":[]}",
        "[\"\xf0\x9d\x84\x9e\xe2\x82\xac\",{\"\":\"\"},[[[]]]]",
        "\"plain\"",
        "-0",
        "{\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"Doe^John\"}]}}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        char *s = reserialize(docs[i], false);
        CHECK_EQ_STR(s, docs[i]);
        /* the pretty form parses back to the same compact form */
        char *p = reserialize(docs[i], true);
        char *again = p ? reserialize(p, false) : NULL;
        CHECK_EQ_STR(again, docs[i]);
        mira_free(s);
        mira_free(p);
        mira_free(again);
    }
    /* escapes are normalised: \/ and \u0041 come back as plain characters */
    char *s = reserialize("[\"\\/\\u0041\\u001f\\u00E9\"]", false);
    CHECK_EQ_STR(s, "[\"/A\\u001f\xc3\xa9\"]");
    mira_free(s);
    /* whitespace is dropped */
    s = reserialize(" { \"a\" :\t[ 1 , 2 ]\r\n} ", false);
    CHECK_EQ_STR(s, "{\"a\":[1,2]}");
    mira_free(s);
}

TEST(large_document)
{
    /* many siblings and long strings: exercises the arena's block chain */
    mira_json_writer *w = mira_json_writer_new(false);
    mira_json_begin_array(w);
    char big[100000];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 5000; i++) {
        mira_json_begin_object(w);
        mira_json_key(w, "i");
        mira_json_int(w, i);
        mira_json_key(w, "s");
        mira_json_string(w, big, i % 1000 == 0 ? sizeof big : (size_t)(i % 50));
        mira_json_end_object(w);
    }
    mira_json_end_array(w);
    size_t len;
    char *s = mira_json_writer_finish(w, &len, NULL);
    mira_json_writer_free(w);
    CHECK(s != NULL);
    mira_json *v = parse_n(s, len);
    CHECK(v != NULL);
    CHECK_EQ_INT(mira_json_count(v), 5000);
    CHECK(mira_json_get_number(mira_json_get(mira_json_at(v, 4999), "i")) == 4999);
    size_t sl;
    mira_json_get_string(mira_json_get(mira_json_at(v, 3000), "s"), &sl);
    CHECK_EQ_INT(sl, sizeof big);
    mira_json_free(v);
    mira_free(s);
}
