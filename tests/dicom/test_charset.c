/* Tests for src/dicom/charset.c: Specific Character Set decoding against published examples. */
#include "harness.h"

#include "dicom/charset.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * Where the expected strings come from:
 *   PS3.5  DICOM PS3.5 Annex H (Japanese), I (Korean), J (UTF-8, GB18030, GBK), K (GB 2312).
 *   pydicom  pydicom's tests/test_charset.py and data/charset_files/FileInfo.txt (which give
 *            the bytes and the decoded text side by side).
 *   rule  written by hand from a rule of PS3.5 6.1.2.5.3 or PS3.3 C.12.1.1.2, quoted at the
 *         test; never from mira's own output.
 * Inputs are hex so that C's greedy "\x" escapes cannot bite.
 */

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; hex[i] && hex[i + 1] && n < cap; i += 2) {
        unsigned v;
        sscanf(hex + i, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static void check_decode(const char *file, int line, const char *charset, mira_vr vr,
                         const char *hex, const char *expected)
{
    uint8_t in[1024];
    size_t n = unhex(hex, in, sizeof in);
    mira_error *err = NULL;
    size_t out_len = 0;
    char *out = mira__charset_decode(charset, vr, in, n, &out_len, &err);
    if (!out || out_len != strlen(expected) || memcmp(out, expected, out_len) != 0) {
        fprintf(stderr, "%s:%d: decoding [%s] with \"%s\": got \"%s\" (%zu bytes), want \"%s\"\n",
                file, line, hex, charset ? charset : "(null)", out ? out : "(null)", out_len,
                expected);
        mira_test_failures++;
    }
    mira_free(out);
    mira_error_free(err);
}

#define CHECK_DECODE(charset, vr, hex, expected)                                                   \
    check_decode(__FILE__, __LINE__, charset, vr, hex, expected)

/* ---- Default repertoire and the fast path ---- */

TEST(ascii_is_unchanged_in_every_ascii_based_charset)
{
    const char *charsets[] = {NULL,          "",           "ISO_IR 6",
                              "ISO 2022 IR 6", "ISO_IR 100", "ISO_IR 192",
                              "GB18030",       "GBK",        "ISO_IR 144",
                              "\\ISO 2022 IR 87", "\\ISO 2022 IR 149", "UNKNOWN TERM"};
    for (size_t i = 0; i < sizeof charsets / sizeof charsets[0]; i++) {
        size_t len = 0;
        char *s = mira__charset_decode(charsets[i], MIRA_VR_PN,
                                       (const uint8_t *)"Hello^World=\\x", 14, &len, NULL);
        CHECK_EQ_STR(s, "Hello^World=\\x");
        CHECK_EQ_INT(len, 14);
        mira_free(s);
    }
}

TEST(embedded_nul_and_empty_values)
{
    size_t len = 99;
    char *s = mira__charset_decode("ISO_IR 100", MIRA_VR_LT, (const uint8_t *)"A\0B", 3, &len,
                                   NULL);
    CHECK(s && len == 3 && memcmp(s, "A\0B", 4) == 0);
    mira_free(s);
    s = mira__charset_decode("", MIRA_VR_LO, NULL, 0, &len, NULL);
    CHECK_EQ_STR(s, "");
    CHECK_EQ_INT(len, 0);
    mira_free(s);
    s = mira__charset_decode("ISO 2022 IR 13\\ISO 2022 IR 87", MIRA_VR_PN,
                             (const uint8_t *)"", 0, NULL, NULL);
    CHECK_EQ_STR(s, "");
    mira_free(s);
}

TEST(long_ascii_value)
{
    size_t n = 1 << 20;
    uint8_t *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (uint8_t)(' ' + i % 90);
    size_t len = 0;
    char *s = mira__charset_decode("ISO_IR 192", MIRA_VR_UT, in, n, &len, NULL);
    CHECK(s && len == n && memcmp(s, in, n) == 0 && s[n] == '\0');
    mira_free(s);
    free(in);
}

TEST(missing_charset_reads_high_bytes_as_latin1)
{
    /* rule: ISO-IR 6 is the only set of the default repertoire, but a file without (0008,0005)
     * that carries Latin-1 text must not lose it: mira reads it as Latin-1, like pydicom. */
    CHECK_DECODE("", MIRA_VR_PN, "4ae972f46d65", "J\xC3\xA9r\xC3\xB4me");
    CHECK_DECODE(NULL, MIRA_VR_LO, "e9ff", "\xC3\xA9\xC3\xBF");
}

TEST(unknown_term_decodes_as_latin1)
{
    /* rule (charset.h): an unknown defined term decodes as ISO_IR 100. */
    CHECK_DECODE("ISO_IR 999", MIRA_VR_PN, "4275635e4ae972f46d65", "Buc^Jérôme");
    CHECK_DECODE("ISO 2022 IR 146\\ISO 2022 IR 100", MIRA_VR_LO, "e9", "é");
}

/* ---- Single-byte character sets without code extensions (PS3.3 Table C.12-2) ---- */

TEST(single_byte_without_extensions)
{
    /* pydicom FileInfo.txt: the Patient's Name of each charset file. */
    CHECK_DECODE("ISO_IR 100", MIRA_VR_PN, "4275635e4ae972f46d65", "Buc^Jérôme");
    CHECK_DECODE("ISO_IR 100", MIRA_VR_PN, "c46e6561735e52fc6469676572", "Äneas^Rüdiger");
    CHECK_DECODE("ISO_IR 127", MIRA_VR_PN, "e2c8c7e6ea5ee4e6d2c7d1", "قباني^لنزار");
    CHECK_DECODE("ISO_IR 126", MIRA_VR_PN, "c4e9efedf5f3e9eff2", "Διονυσιος");
    CHECK_DECODE("ISO_IR 138", MIRA_VR_PN, "f9f8e5ef5ee3e1e5f8e4", "שרון^דבורה");
    CHECK_DECODE("ISO_IR 144", MIRA_VR_PN, "bbeeda6365dcd17970d3", "Люкceмбypг");
    /* pydicom test_charset.py ENCODED_NAMES, the bytes after the escape sequence. */
    CHECK_DECODE("ISO_IR 101", MIRA_VR_PN, "5761b3ea7361", "Wałęsa");
    CHECK_DECODE("ISO_IR 109", MIRA_VR_PN, "616e7461fd6e6f6d6f", "antaŭnomo");
    CHECK_DECODE("ISO_IR 110", MIRA_VR_PN, "76e0726473", "vārds");
    CHECK_DECODE("ISO_IR 148", MIRA_VR_PN, "c7617675fe6ff06c75", "Çavuşoğlu");
    CHECK_DECODE("ISO_IR 166", MIRA_VR_PN, "b9d2c1caa1d8c5", "นามสกุล");
    /* ISO/IEC 8859-15 (ISO-IR 203): the eight positions where it differs from 8859-1. */
    CHECK_DECODE("ISO_IR 203", MIRA_VR_LO, "a4a6a8b4b8bcbdbe", "€ŠšŽžŒœŸ");
}

TEST(iso_ir_13_is_jis_x_0201)
{
    /* PS3.5 H.3.2, first component group: half-width katakana in G1. */
    CHECK_DECODE("ISO_IR 13", MIRA_VR_PN, "d4cfc0de5ec0dbb3", "ﾔﾏﾀﾞ^ﾀﾛｳ");
    /* rule: PS3.3 Table C.12-2 puts ISO-IR 14 (JIS X 0201 Romaji) in G0, where 0x5C is YEN
     * SIGN and 0x7E OVERLINE (JIS X 0201; Unicode's JIS0201.TXT) ... */
    CHECK_DECODE("ISO_IR 13", MIRA_VR_LT, "315c7e", "1¥‾");
    /* ... but 0x5C still separates values (PS3.5 6.1.2.5.3 names "¥" for ISO-IR 14). */
    CHECK_DECODE("ISO_IR 13", MIRA_VR_LO, "615c62", "a\\b");
    /* rule: 0xE0..0xFF are not JIS X 0201 (pydicom reads ISO_IR 13 as Shift_JIS). */
    CHECK_DECODE("ISO_IR 13", MIRA_VR_LO, "e0", "\xEF\xBF\xBD");
}

/* ---- Single-byte character sets with code extensions (PS3.3 Table C.12-3) ---- */

TEST(single_byte_code_extensions)
{
    /* pydicom test_single_byte_code_extensions: "ASCII+" then ENCODED_NAMES, with
     * Specific Character Set ["", encoding]. */
    CHECK_DECODE("\\ISO 2022 IR 13", MIRA_VR_PN, "41534349492b1b2949d4cfc0de5e1b2949c0dbb3",
                 "ASCII+ﾔﾏﾀﾞ^ﾀﾛｳ");
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_PN,
                 "41534349492b1b2d414275635e1b2d414ae972f46d65", "ASCII+Buc^Jérôme");
    CHECK_DECODE("\\ISO 2022 IR 101", MIRA_VR_PN, "41534349492b1b2d425761b3ea7361",
                 "ASCII+Wałęsa");
    CHECK_DECODE("\\ISO 2022 IR 109", MIRA_VR_PN, "41534349492b1b2d43616e7461fd6e6f6d6f",
                 "ASCII+antaŭnomo");
    CHECK_DECODE("\\ISO 2022 IR 110", MIRA_VR_PN, "41534349492b1b2d4476e0726473",
                 "ASCII+vārds");
    CHECK_DECODE("\\ISO 2022 IR 127", MIRA_VR_PN,
                 "41534349492b1b2d47e2c8c7e6ea5e1b2d47e4e6d2c7d1", "ASCII+قباني^لنزار");
    CHECK_DECODE("\\ISO 2022 IR 126", MIRA_VR_PN, "41534349492b1b2d46c4e9efedf5f3e9eff2",
                 "ASCII+Διονυσιος");
    CHECK_DECODE("\\ISO 2022 IR 138", MIRA_VR_PN,
                 "41534349492b1b2d48f9f8e5ef5e1b2d48e3e1e5f8e4", "ASCII+שרון^דבורה");
    CHECK_DECODE("\\ISO 2022 IR 144", MIRA_VR_PN, "41534349492b1b2d4cbbeeda6365dcd17970d3",
                 "ASCII+Люкceмбypг");
    CHECK_DECODE("\\ISO 2022 IR 148", MIRA_VR_PN, "41534349492b1b2d4dc7617675fe6ff06c75",
                 "ASCII+Çavuşoğlu");
    CHECK_DECODE("\\ISO 2022 IR 166", MIRA_VR_PN, "41534349492b1b2d54b9d2c1caa1d8c5",
                 "ASCII+นามสกุล");
    /* rule: PS3.3 Table C.12-3 gives ESC 02/13 06/02 for ISO-IR 203; 0xA4 is the euro sign. */
    CHECK_DECODE("\\ISO 2022 IR 203", MIRA_VR_LO, "41534349492b1b2d62a4", "ASCII+€");
}

TEST(single_byte_multi_charset)
{
    /* pydicom test_single_byte_multi_charset_personname / _text / test_multi_charset_default */
    CHECK_DECODE("ISO 2022 IR 100\\ISO 2022 IR 126", MIRA_VR_PN,
                 "44696f6e7973696f733d1b2d46c4e9efedf5f3e9eff2", "Dionysios=Διονυσιος");
    CHECK_DECODE("ISO 2022 IR 100\\ISO 2022 IR 144\\ISO 2022 IR 126", MIRA_VR_PN,
                 "4275635e4ae972f46d655c1b2d46c4e9efedf5f3e9eff25c1b2d4cbbeeda6365dcd17970d3",
                 "Buc^Jérôme\\Διονυσιος\\Люкceмбypг");
    CHECK_DECODE("ISO 2022 IR 100\\ISO 2022 IR 144\\ISO 2022 IR 126", MIRA_VR_LO,
                 "4275635e4ae972f46d655c1b2d46c4e9efedf5f3e9eff25c1b2d4cbbeeda6365dcd17970d3",
                 "Buc^Jérôme\\Διονυσιος\\Люкceмбypг");
    CHECK_DECODE("ISO 2022 IR 100\\ISO 2022 IR 126", MIRA_VR_LO,
                 "44696f6e7973696f73206973201b2d46c4e9efedf5f3e9eff2", "Dionysios is Διονυσιος");
    CHECK_DECODE("ISO 2022 IR 100\\ISO 2022 IR 144", MIRA_VR_PN, "4275635e4ae972f46d65",
                 "Buc^Jérôme");
    CHECK_DECODE("ISO 2022 IR 100\\ISO 2022 IR 144", MIRA_VR_LO,
                 "52f66e7467656e6175666e61686d65", "Röntgenaufnahme");
}

TEST(misspelled_terms)
{
    /* pydicom test_patched_charset / test_patched_code_extension_charset */
    CHECK_DECODE("ISO IR 192", MIRA_VR_PN, "4275635e4ac3a972c3b46d65", "Buc^Jérôme");
    CHECK_DECODE("ISO_IR 100\\ISO-IR 144", MIRA_VR_PN, "4275635e4ae972f46d65", "Buc^Jérôme");
    CHECK_DECODE("ISO_2022-IR 100\\ISO 2022 IR 126", MIRA_VR_PN,
                 "44696f6e7973696f733d1b2d46c4e9efedf5f3e9eff2", "Dionysios=Διονυσιος");
    CHECK_DECODE("ISO 2022 IR 100\\ISO_2022_IR+126", MIRA_VR_PN,
                 "44696f6e7973696f733d1b2d46c4e9efedf5f3e9eff2", "Dionysios=Διονυσιος");
    /* rule: case and padding spaces do not matter. */
    CHECK_DECODE(" iso-ir 144 ", MIRA_VR_PN, "bbeeda6365dcd17970d3", "Люкceмбypг");
}

TEST(stand_alone_terms_ignore_extensions)
{
    /* pydicom test_code_extensions_not_allowed */
    CHECK_DECODE("ISO_IR 192\\ISO 2022 IR 100\\ISO 2022 IR 144", MIRA_VR_PN,
                 "4275635e4ac3a972c3b46d65", "Buc^Jérôme");
    /* rule: PS3.5 6.1.2.5.4 allows no code extensions with UTF-8, so ESC is only a control
     * character there. */
    CHECK_DECODE("ISO_IR 192", MIRA_VR_LO, "611b2842c3a9", "a\x1b(Bé");
}

/* ---- Japanese (PS3.5 Annex H) ---- */

TEST(japanese_annex_h)
{
    /* PS3.5 H.3.1 */
    CHECK_DECODE("\\ISO 2022 IR 87", MIRA_VR_PN,
                 "59616d6164615e5461726f753d1b24423b3345441b28425e1b244242404f3a1b28423d1b24422464"
                 "245e24401b28425e1b2442243f246d24261b2842",
                 "Yamada^Tarou=山田^太郎=やまだ^たろう");
    /* PS3.5 H.3.2 */
    CHECK_DECODE("ISO 2022 IR 13\\ISO 2022 IR 87", MIRA_VR_PN,
                 "d4cfc0de5ec0dbb33d1b24423b3345441b284a5e1b244242404f3a1b284a3d1b24422464245e2440"
                 "1b284a5e1b2442243f246d24261b284a",
                 "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう");
    /* pydicom FileInfo.txt chrSQEncoding: the same name returning with ESC ( B, not ESC ( J */
    CHECK_DECODE("ISO 2022 IR 13\\ISO 2022 IR 87 ", MIRA_VR_PN,
                 "d4cfc0de5ec0dbb33d1b24423b3345441b28425e1b244242404f3a1b28423d1b24422464245e2440"
                 "1b28425e1b2442243f246d24261b2842",
                 "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう");
}

TEST(japanese_jis_x_0212_and_mixed)
{
    /* pydicom test_japanese_multi_byte_personname (鷗 is in JIS X 0212) */
    CHECK_DECODE("ISO 2022 IR 6\\ISO 2022 IR 87\\ISO 2022 IR 159", MIRA_VR_PN,
                 "4d6f72695e4f6761693d1b24423f391b28425e1b2428446c3f1b244233301b28423d1b24422462"
                 "246a1b28425e1b2442242a2426242c24241b2842",
                 "Mori^Ogai=森^鷗外=もり^おうがい");
    /* pydicom test_japanese_multi_byte_encoding: every Japanese set in one value */
    CHECK_DECODE("ISO 2022 IR 13\\ISO 2022 IR 87\\ISO 2022 IR 159", MIRA_VR_LO,
                 "1b244224221b284a611b2949b11b244225221b2428446d4e1b284a", "あaｱア齩");
}

TEST(japanese_multi_valued)
{
    /* pydicom chrJapMulti.dcm (0010,1001), pad removed */
    CHECK_DECODE("\\ISO 2022 IR 87", MIRA_VR_PN,
                 "1b24422464245e24401b28425e1b2442243f246d24261b28425c1b24422464245e24401b28425e1b"
                 "2442243f246d24261b2842",
                 "やまだ^たろう\\やまだ^たろう");
    CHECK_DECODE("ISO 2022 IR 6\\ISO 2022 IR 87", MIRA_VR_LT,
                 "1b2442243f246d24261b2842", "たろう");
}

/* ---- Korean (PS3.5 Annex I) ---- */

TEST(korean_annex_i)
{
    /* PS3.5 I.2 */
    CHECK_DECODE("\\ISO 2022 IR 149", MIRA_VR_PN,
                 "486f6e675e47696c646f6e673d1b242943fbf35e1b242943d1ced4d73d1b242943c8ab5e1b2429"
                 "43b1e6b5bf",
                 "Hong^Gildong=洪^吉洞=홍^길동");
    /* PS3.5 I.3: G1 designated at the head of each line, ASCII and Hangul mixed after it.
     * 한글 is C7D1 B1DB in KS X 1001 (Python's euc_kr codec). */
    CHECK_DECODE("\\ISO 2022 IR 149", MIRA_VR_LT,
                 "1b242943546865206669727374206c696e6520696e636c7564657320c7d1b1db2e0d0a"
                 "1b242943546865207365636f6e64206c696e6520696e636c7564657320c7d1b1db2c20746f6f2e"
                 "0d0a"
                 "546865207468697264206c696e65",
                 "The first line includes 한글.\r\nThe second line includes 한글, too.\r\n"
                 "The third line");
    /* pydicom chrKoreanMulti.dcm (0010,21B0), FILE_PATIENT_NAMES "김희중" */
    CHECK_DECODE("\\ISO 2022 IR 149", MIRA_VR_LT, "1b242943b1e8c8f1c1df1b2842", "김희중");
    /* rule: as value 1, ISO 2022 IR 149 is in G1 from the start (pydicom: euc_kr). */
    CHECK_DECODE("ISO 2022 IR 149", MIRA_VR_LO, "b1e8c8f1c1df", "김희중");
}

/* ---- Chinese (PS3.5 Annexes J and K) ---- */

#define J2_TEXT                                                                                    \
    "The first line includes中文.\r\nThe second line includes中文, too.\r\nThe third line.\r\n"

TEST(chinese_unicode_annex_j)
{
    /* PS3.5 J.1 (pydicom chrX1.dcm) */
    CHECK_DECODE("ISO_IR 192", MIRA_VR_PN, "57616e675e5869616f446f6e673de78e8b5ee5b08fe69db13d",
                 "Wang^XiaoDong=王^小東=");
    /* PS3.5 J.2 */
    CHECK_DECODE("ISO_IR 192", MIRA_VR_LT,
                 "546865206669727374206c696e6520696e636c75646573e4b8ade696872e0d0a5468652073656"
                 "36f6e64206c696e6520696e636c75646573e4b8ade696872c20746f6f2e0d0a546865207468697264"
                 "206c696e652e0d0a",
                 J2_TEXT);
}

TEST(chinese_gb18030_and_gbk_annex_j)
{
    /* PS3.5 J.3 and J.4; Annex J says they demonstrate GBK as well. */
    const char *pn = "57616e675e5869616f446f6e673dcdf55ed0a1b6ab3d";
    const char *lt = "546865206669727374206c696e6520696e636c75646573d6d0cec42e0d0a5468652073656"
                     "36f6e64206c696e6520696e636c75646573d6d0cec42c20746f6f2e0d0a546865207468697264"
                     "206c696e652e0d0a";
    CHECK_DECODE("GB18030", MIRA_VR_PN, pn, "Wang^XiaoDong=王^小东=");
    CHECK_DECODE("GB18030", MIRA_VR_LT, lt, J2_TEXT);
    CHECK_DECODE("GBK", MIRA_VR_PN, pn, "Wang^XiaoDong=王^小东=");
    CHECK_DECODE("GBK", MIRA_VR_LT, lt, J2_TEXT);
}

TEST(chinese_gb2312_annex_k)
{
    /* PS3.5 K.2 (its final 0x20 pad left out) */
    CHECK_DECODE("\\ISO 2022 IR 58", MIRA_VR_PN,
                 "5a68616e675e5869616f446f6e673d1b242941d5c55e1b242941d0a1b6ab3d",
                 "Zhang^XiaoDong=张^小东=");
    /* PS3.5 K.3 (2024): every line starts in ASCII and designates GB 2312 to G1 again */
    CHECK_DECODE("\\ISO 2022 IR 58", MIRA_VR_LT,
                 "312e1b242941b5dad2bbd0d0cec4d7d6a1a30d0a322e1b242941b5dab6fed0d0cec4d7d6a1a30d0a"
                 "332e1b242941b5dac8fdd0d0cec4d7d6a1a30d0a",
                 "1.第一行文字。\r\n2.第二行文字。\r\n3.第三行文字。\r\n");
    /* PS3.5 K.3 (2015c): the same with explicit ESC ( B before each CR LF, and a pad */
    CHECK_DECODE("\\ISO 2022 IR 58", MIRA_VR_LT,
                 "312e1b242941b5dad2bbd0d0cec4d7d6a1a31b28420d0a322e1b242941b5dab6fed0d0cec4d7d6a1"
                 "a31b28420d0a332e1b242941b5dac8fdd0d0cec4d7d6a1a31b28420d0a20",
                 "1.第一行文字。\r\n2.第二行文字。\r\n3.第三行文字。\r\n ");
}

/* ---- Where the first value's sets come back (PS3.5 6.1.2.5.3) ---- */

TEST(reset_at_person_name_delimiters)
{
    /* rule: after '^' the first value's sets are active again; with value 1 empty, that is
     * ISO-IR 6 alone, so katakana bytes without a new ESC ) I are not characters. (pydicom
     * test_missing_escape_for_single_byte_code_extensions reads them as Latin-1: "ÀÛ³".) */
    CHECK_DECODE("\\ISO 2022 IR 13", MIRA_VR_PN, "41534349492b1b2949d4cfc0de5ec0dbb3",
                 "ASCII+ﾔﾏﾀﾞ^\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    /* rule: with ISO 2022 IR 13 as value 1, katakana is in G1 again after the delimiter. */
    CHECK_DECODE("ISO 2022 IR 13\\ISO 2022 IR 100", MIRA_VR_PN, "1b2d41e95ed4", "é^ﾔ");
    /* rule: '=' too, and only in PN */
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_PN, "1b2d41e93de9", "é=\xEF\xBF\xBD");
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_LO, "1b2d41e95ee93de9", "é^é=é");
}

TEST(reset_at_value_delimiter_except_in_single_valued_vrs)
{
    /* rule: '\' ends a value in multi-valued VRs ... */
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_LO, "1b2d41e95ce9", "é\\\xEF\xBF\xBD");
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_SH, "1b2d41e95ce9", "é\\\xEF\xBF\xBD");
    /* ... but is an ordinary character in LT, ST and UT (VM is always 1). */
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_LT, "1b2d41e95ce9", "é\\é");
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_ST, "1b2d41e95ce9", "é\\é");
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_UT, "1b2d41e95ce9", "é\\é");
}

TEST(reset_at_control_characters)
{
    /* rule: CR, LF, FF, TAB and any other control character but ESC */
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_LT, "1b2d41e90d0ae9", "é\r\n\xEF\xBF\xBD");
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_LT, "1b2d41e909e9", "é\t\xEF\xBF\xBD");
    CHECK_DECODE("\\ISO 2022 IR 100", MIRA_VR_LT, "1b2d41e90ce9", "é\f\xEF\xBF\xBD");
    /* rule: a control character inside a JIS X 0208 pair cuts it, then G0 is ASCII again */
    CHECK_DECODE("\\ISO 2022 IR 87", MIRA_VR_LT, "1b2442240a2464", "\xEF\xBF\xBD\n$d");
}

TEST(delimiter_bytes_inside_double_byte_g0)
{
    /* PS3.5 H.3.1: ま is JIS X 0208 0x245E: its second byte is '^' and is no delimiter. */
    CHECK_DECODE("\\ISO 2022 IR 87", MIRA_VR_PN, "1b2442245e1b2842", "ま");
    /* rule: the same for '\' in a multi-valued VR. Row 4 of JIS X 0208 is the hiragana in
     * Unicode's order, 0x2421 = U+3041, so 0x245C = U+307C ぼ. */
    CHECK_DECODE("\\ISO 2022 IR 87", MIRA_VR_LO, "1b2442245c1b2842", "ぼ");
}

/* ---- Bad input ---- */

TEST(invalid_utf8_becomes_replacement_characters)
{
    /* pydicom test_bad_encoded_single_encoding */
    CHECK_DECODE("ISO_IR 192", MIRA_VR_PN, "c4e9efedf5f3e9eff2",
                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    /* The Unicode Standard, section 3.9, Table 3-8: one U+FFFD per maximal subpart */
    CHECK_DECODE("ISO_IR 192", MIRA_VR_LT, "61f18080e180c262806380bf64",
                 "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                 "b\xEF\xBF\xBD"
                 "c\xEF\xBF\xBD\xEF\xBF\xBD"
                 "d");
}

TEST(invalid_multi_byte_becomes_replacement_characters)
{
    /* pydicom test_bad_decoded_multi_byte_encoding */
    CHECK_DECODE("ISO 2022 IR 159", MIRA_VR_PN, "1b242844c4e9efedf5f3e9eff2",
                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    /* rule: a pair cut by the end of the value */
    CHECK_DECODE("\\ISO 2022 IR 87", MIRA_VR_LO, "1b24423b", "\xEF\xBF\xBD");
    CHECK_DECODE("\\ISO 2022 IR 149", MIRA_VR_LO, "1b242943b1", "\xEF\xBF\xBD");
    /* GB18030 cut at the end, and a lead byte followed by a space (Python's gb18030 alike) */
    CHECK_DECODE("GB18030", MIRA_VR_LO, "6181", "a\xEF\xBF\xBD");
    CHECK_DECODE("GB18030", MIRA_VR_LO, "812041", "\xEF\xBF\xBD A");
}

TEST(escape_sequences_mira_does_not_know)
{
    /* rule: an escape sequence (ESC, intermediates 02/00-02/15, a final byte) that no defined
     * term uses becomes one U+FFFD, and the first value's sets are active after it. */
    CHECK_DECODE("ISO 2022 IR 6\\ISO 2022 IR 87", MIRA_VR_LO, "6162631b254764656666",
                 "abc\xEF\xBF\xBD" "deff");
    CHECK_DECODE("\\ISO 2022 IR 87", MIRA_VR_LO, "1b2442243f1b2858243f", "た\xEF\xBF\xBD$?");
    /* cut short by the end of the value */
    CHECK_DECODE("\\ISO 2022 IR 87", MIRA_VR_LO, "6162631b24", "abc\xEF\xBF\xBD");
    CHECK_DECODE("\\ISO 2022 IR 87", MIRA_VR_LO, "6162631b", "abc\xEF\xBF\xBD");
    CHECK_DECODE("\\ISO 2022 IR 87", MIRA_VR_LO, "1b1b2842", "\xEF\xBF\xBD");
}

TEST(known_escape_for_an_undeclared_set_is_honoured)
{
    /* pydicom test_unknown_escape_sequence: ESC - F (Greek) under ISO_IR 100. pydicom keeps
     * ESC and reads Latin-1 ("\x1b-FÄéïíõóéïò"); mira knows the sequence and decodes it. */
    CHECK_DECODE("ISO_IR 100", MIRA_VR_PN, "1b2d46c4e9efedf5f3e9eff2", "Διονυσιος");
}

/* ---- mira__charset_is_known ---- */

TEST(is_known)
{
    CHECK(mira__charset_is_known(NULL));
    CHECK(mira__charset_is_known(""));
    CHECK(mira__charset_is_known("ISO_IR 100"));
    CHECK(mira__charset_is_known("ISO_IR 203"));
    CHECK(mira__charset_is_known("GB18030"));
    CHECK(mira__charset_is_known("\\ISO 2022 IR 87"));
    CHECK(mira__charset_is_known("ISO 2022 IR 13\\ISO 2022 IR 87\\ISO 2022 IR 159 "));
    CHECK(mira__charset_is_known("ISO 2022 IR 6\\ISO 2022 IR 149\\ISO 2022 IR 58"));
    CHECK(mira__charset_is_known("ISO IR 100")); /* a misspelling mira reads correctly */
    CHECK(!mira__charset_is_known("ISO_IR 999"));
    CHECK(!mira__charset_is_known("ISO 2022 IR 100\\ISO 2022 IR 146"));
    CHECK(!mira__charset_is_known("UTF-8"));
}

/* ---- Robustness ---- */

static bool valid_utf8(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (p[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

TEST(random_input_gives_valid_utf8)
{
    static const char *charsets[] = {
        "",
        "ISO_IR 100",
        "ISO_IR 13",
        "ISO_IR 166",
        "ISO_IR 192",
        "GB18030",
        "GBK",
        "\\ISO 2022 IR 87\\ISO 2022 IR 159",
        "ISO 2022 IR 13\\ISO 2022 IR 87",
        "\\ISO 2022 IR 149",
        "\\ISO 2022 IR 58",
        "ISO 2022 IR 100\\ISO 2022 IR 126\\ISO 2022 IR 127\\ISO 2022 IR 138",
        "nonsense",
    };
    static const mira_vr vrs[] = {MIRA_VR_PN, MIRA_VR_LO, MIRA_VR_LT, MIRA_VR_UT};
    /* Bytes that steer the decoder: escape sequence pieces, delimiters, GR. */
    static const uint8_t alphabet[] = {0x1B, '$', '(', ')', '-', 'B', 'J', 'I', 'A', 'C', 'D',
                                       'F', 'L', 'b', '^', '=', '\\', '\r', '\n', 0x21, 0x7E,
                                       0xA1, 0xB0, 0xFE, 0x80, 0xC3, 0xE3, 0xF0, 0x81, 0x30};
    uint8_t in[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = rng() % sizeof in;
        for (size_t i = 0; i < n; i++)
            in[i] = rng() % 3 ? alphabet[rng() % sizeof alphabet] : (uint8_t)rng();
        const char *cs = charsets[rng() % (sizeof charsets / sizeof charsets[0])];
        mira_vr vr = vrs[rng() % 4];
        /* An exact-size heap copy, so that AddressSanitizer sees any overread. */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, in, n);
        size_t len = 0;
        mira_error *err = NULL;
        char *s = mira__charset_decode(cs, vr, copy, n, &len, &err);
        CHECK(s != NULL);
        if (s) {
            CHECK(s[len] == '\0');
            CHECK(len <= 3 * n);
            if (!valid_utf8(s, len)) {
                fprintf(stderr, "invalid UTF-8 from charset \"%s\"\n", cs);
                mira_test_failures++;
            }
        }
        mira_free(s);
        mira_error_free(err);
        free(copy);
    }
}

TEST(allocation_failure_is_reported)
{
    const uint8_t ascii[] = "plain";
    const uint8_t jis[] = {0x1B, '$', 'B', '$', 'd'};
    for (int path = 0; path < 2; path++) {
        for (long n = 1; n <= 4; n++) {
            mira_error *err = NULL;
            mira_alloc_fail_after(n);
            char *s = path ? mira__charset_decode("\\ISO 2022 IR 87", MIRA_VR_PN, jis, 5, NULL,
                                                  &err)
                           : mira__charset_decode("", MIRA_VR_PN, ascii, 5, NULL, &err);
            mira_alloc_fail_after(0);
            if (s) {
                CHECK(err == NULL);
                CHECK_EQ_STR(s, path ? "や" : "plain");
            } else {
                CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_NOMEM);
            }
            mira_free(s);
            mira_error_free(err);
        }
    }
}

static void *decode_many(void *arg)
{
    (void)arg;
    static const uint8_t gb[] = {0xCD, 0xF5, '^', 0xD0, 0xA1, 0xB6, 0xAB};
    static const uint8_t kr[] = {0x1B, '$', ')', 'C', 0xB1, 0xE8, 0xC8, 0xF1, 0xC1, 0xDF};
    long bad = 0;
    for (int i = 0; i < 2000; i++) {
        char *a = mira__charset_decode(i % 2 ? "GB18030" : "GBK", MIRA_VR_PN, gb, sizeof gb, NULL,
                                       NULL);
        char *b = mira__charset_decode("\\ISO 2022 IR 149", MIRA_VR_PN, kr, sizeof kr, NULL, NULL);
        bad += !a || strcmp(a, "王^小东") != 0;
        bad += !b || strcmp(b, "김희중") != 0;
        mira_free(a);
        mira_free(b);
    }
    return (void *)(intptr_t)bad;
}

TEST(threads_decode_concurrently)
{
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        CHECK(pthread_create(&t[i], NULL, decode_many, NULL) == 0);
    for (int i = 0; i < 8; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        CHECK_EQ_INT((intptr_t)bad, 0);
    }
}
