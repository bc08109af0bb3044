/*
 * Unit tests for signature.c: the Standard Webhooks specification's vector
 * and its negative cases.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "signature_int.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define MSG_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define TS "1614265330"
#define NOW INT64_C(1614265330)
#define BODY "{\"test\": 2432232314}"
#define SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static struct hq__sig_key key;

static int
setup(void **state)
{
    struct hq__err err;

    (void)state;
    return hq__sig_key_parse(SECRET, &key, &err);
}

static int
verify(const char *id, const char *ts, const char *sig, const char *body,
       int64_t now)
{
    return hq__sig_verify(&key, id, id ? strlen(id) : 0, ts,
                          ts ? strlen(ts) : 0, sig, sig ? strlen(sig) : 0,
                          body, strlen(body), now);
}

static void
test_signature_spec_vector_signs_and_verifies(void **state)
{
    char out[HQ_SIG_B64_LEN + 1];

    (void)state;
    assert_int_equal(hq__sig_sign(&key, MSG_ID, strlen(MSG_ID), TS, strlen(TS),
                                  BODY, strlen(BODY), out), HQ_OK);
    assert_string_equal(out, SIG + 3);
    assert_int_equal(verify(MSG_ID, TS, SIG, BODY, NOW), HQ_SIG_OK);
}

static void
test_signature_each_missing_header_fails(void **state)
{
    (void)state;
    assert_int_equal(verify(NULL, TS, SIG, BODY, NOW), HQ_SIG_NO_ID);
    assert_int_equal(verify("", TS, SIG, BODY, NOW), HQ_SIG_NO_ID);
    assert_int_equal(verify(MSG_ID, NULL, SIG, BODY, NOW), HQ_SIG_NO_TIMESTAMP);
    assert_int_equal(verify(MSG_ID, TS, NULL, BODY, NOW), HQ_SIG_NO_SIGNATURE);
    assert_int_equal(verify(MSG_ID, TS, "", BODY, NOW), HQ_SIG_NO_SIGNATURE);
}

static void
test_signature_non_numeric_timestamp_fails(void **state)
{
    static const char *const bad[] = {
        "abc", "1614265330x", "-1614265330", "+1614265330", " 1614265330",
        "1614265330.5", "16142653300000000000000",
    };

    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(bad); i++)
        assert_int_equal(verify(MSG_ID, bad[i], SIG, BODY, NOW),
                         HQ_SIG_BAD_TIMESTAMP);
}

static void
test_signature_tolerance_is_five_minutes_both_ways(void **state)
{
    (void)state;
    assert_int_equal(verify(MSG_ID, TS, SIG, BODY, NOW + 300), HQ_SIG_OK);
    assert_int_equal(verify(MSG_ID, TS, SIG, BODY, NOW - 300), HQ_SIG_OK);
    assert_int_equal(verify(MSG_ID, TS, SIG, BODY, NOW + 301), HQ_SIG_STALE);
    assert_int_equal(verify(MSG_ID, TS, SIG, BODY, NOW - 301), HQ_SIG_STALE);
}

static void
test_signature_one_changed_character_fails(void **state)
{
    char sig[] = SIG;

    (void)state;
    for (size_t i = 3; i < strlen(SIG) - 1; i++) {
        char saved = sig[i];

        sig[i] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(verify(MSG_ID, TS, sig, BODY, NOW), HQ_SIG_MISMATCH);
        sig[i] = saved;
    }
    /* A changed body, id or timestamp fails too. */
    assert_int_equal(verify(MSG_ID, TS, SIG, "{\"test\": 2432232315}", NOW),
                     HQ_SIG_MISMATCH);
    assert_int_equal(verify("msg_p5jXN8AQM9LWM0D4loKWxJel", TS, SIG, BODY, NOW),
                     HQ_SIG_MISMATCH);
    assert_int_equal(verify(MSG_ID, "1614265331", SIG, BODY, NOW),
                     HQ_SIG_MISMATCH);
}

static void
test_signature_valid_entry_among_wrong_and_v2_passes(void **state)
{
    (void)state;
    assert_int_equal(verify(MSG_ID, TS,
                            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= "
                            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= "
                            SIG " v1a,xyz",
                            BODY, NOW), HQ_SIG_OK);
    /* The right MAC under another version is not enough. */
    assert_int_equal(verify(MSG_ID, TS,
                            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                            BODY, NOW), HQ_SIG_MISMATCH);
    /* Nor is a truncated entry, or the MAC without its version. */
    assert_int_equal(verify(MSG_ID, TS, "v1,g0hM9SsE+OTPJTGt", BODY, NOW),
                     HQ_SIG_MISMATCH);
    assert_int_equal(verify(MSG_ID, TS, SIG + 3, BODY, NOW), HQ_SIG_MISMATCH);
}

/* Decision: a secret without "whsec_" is the bare base64 key (as in the
 * reference libraries), so it verifies the same signatures. */
static void
test_signature_secret_without_prefix_is_bare_base64(void **state)
{
    struct hq__sig_key bare;
    struct hq__err err;

    (void)state;
    assert_int_equal(hq__sig_key_parse(SECRET + 6, &bare, &err), HQ_OK);
    assert_int_equal(bare.len, key.len);
    assert_memory_equal(bare.key, key.key, key.len);
    assert_int_equal(hq__sig_verify(&bare, MSG_ID, strlen(MSG_ID), TS,
                                    strlen(TS), SIG, strlen(SIG), BODY,
                                    strlen(BODY), NOW), HQ_SIG_OK);
}

static void
test_signature_bad_secrets_are_rejected_without_echo(void **state)
{
    static const char *const bad[] = {
        "", "whsec_", "whsec_not base64!", "whsec_abc", "whsec_ab=c",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
    };
    struct hq__sig_key k;
    struct hq__err err;

    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(bad); i++) {
        assert_int_equal(hq__sig_key_parse(bad[i], &k, &err), HQ_EINVAL);
        if (strlen(bad[i]) > 6)
            assert_null(strstr(err.msg, bad[i] + 6));
    }
}

static void
test_signature_base64_decode_checks_padding(void **state)
{
    unsigned char out[8];

    (void)state;
    assert_int_equal(hq__base64_decode("YQ==", 4, out, sizeof(out)), 1);
    assert_int_equal(out[0], 'a');
    assert_int_equal(hq__base64_decode("YWI=", 4, out, sizeof(out)), 2);
    assert_int_equal(hq__base64_decode("YWJj", 4, out, sizeof(out)), 3);
    assert_int_equal(hq__base64_decode("YWJ", 3, out, sizeof(out)), -1);
    assert_int_equal(hq__base64_decode("Y=Jj", 4, out, sizeof(out)), -1);
    assert_int_equal(hq__base64_decode("YWJjYWJjYWJj", 12, out, sizeof(out)), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_spec_vector_signs_and_verifies),
        cmocka_unit_test(test_signature_each_missing_header_fails),
        cmocka_unit_test(test_signature_non_numeric_timestamp_fails),
        cmocka_unit_test(test_signature_tolerance_is_five_minutes_both_ways),
        cmocka_unit_test(test_signature_one_changed_character_fails),
        cmocka_unit_test(test_signature_valid_entry_among_wrong_and_v2_passes),
        cmocka_unit_test(test_signature_secret_without_prefix_is_bare_base64),
        cmocka_unit_test(test_signature_bad_secrets_are_rejected_without_echo),
        cmocka_unit_test(test_signature_base64_decode_checks_padding),
    };
    return cmocka_run_group_tests_name("signature", tests, setup, NULL);
}
