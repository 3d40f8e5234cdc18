"""Redaction: every kind is masked where it occurs, and nothing that only resembles it is (false positives
lose memories just as surely as misses leak data)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from pllm_cli.ingest.redact import iban_valid, luhn_valid, redact


def masked(text: str) -> str:
    return redact(text)[0]


# --- e-mail -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["elin.berg@example.com", "elin.berg+resa@exempel.se", "åsa.ström@föreningen.se", "X_Y-z@mail.co.uk", "a@b.io"],
)
def test_email_addresses_are_masked(address: str) -> None:
    assert redact(f"Skriv till {address}, tack!") == ("Skriv till [email], tack!", Counter(email=1))


@pytest.mark.parametrize(
    "text",
    ["@elin see above", "icon@2x.png", "user@localhost", "a @ b", "price @ 20 kr", "elin@", "@example.com"],
)
def test_things_with_an_at_sign_that_are_not_addresses_stay(text: str) -> None:
    assert redact(text) == (text, Counter())


def test_mailto_links_and_url_credentials() -> None:
    assert masked("<a href='mailto:elin@example.com'>") == "<a href='mailto:[email]'>"
    assert redact("clone https://elin:hunter2secret@git.example.com/repo.git") == (
        "clone https://elin:[secret]@git.example.com/repo.git",
        Counter(secret=1),
    )


# --- phone numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "+46 70 123 45 67",
        "+46701234567",
        "+46 (0)70-123 45 67",
        "0046 70 123 45 67",
        "070-123 45 67",
        "070 123 45 67",
        "0701234567",
        "08-123 456 78",
        "031-12 34 56",
        "+44 20 7946 0958",
        "07700 900123",
        "+1 (555) 123-4567",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "1-800-555-1234",
    ],
)
def test_phone_numbers_are_masked(number: str) -> None:
    assert redact(f"Ring {number} efter lunch") == ("Ring [phone] efter lunch", Counter(phone=1))


@pytest.mark.parametrize(
    "text",
    [
        "Mötet är 2026-02-03.",
        "Mötet är 03.02.2026 eller 3/2/2026 eller 12/31/2026.",
        "Loggat 2026-02-03T14:30:00+01:00 och 2026-02-03 14:30:00 +0100.",
        "Klockan 14:30, sluttid 1:55, 1:55:12 i mål.",
        "Det kostar 1 800 kr, huset 12 500 000 kr, 1,234,567.89 USD.",
        "Nummerlapp 18342, år 2024, säsongerna 2024-2026.",
        "Version 1.2.3, Windows 10.0.19045.2965, v2.13.0.",
        "Servern 192.168.100.200 och 10.0.0.1.",
        "Öppet 08.00-17.00 och 0800-1700.",
        "π är 3.14159265358979 och 0.12345678 BTC.",
        "Personnummer 19900101-1234 och 000101-1234.",
        "Bankgiro 5050-1055, unix-tid 1706961600.",
        "Id 550e8400-e29b-41d4-a716-446655440000.",
        "Sida 12 av 345, rad 6789.",
    ],
)
def test_numbers_that_are_not_phone_numbers_stay(text: str) -> None:
    assert redact(text) == (text, Counter())


def test_a_phone_number_next_to_other_numbers_is_masked_alone() -> None:
    assert masked("070-123 45 67 2026") == "[phone] 2026"
    assert masked("(070-123 45 67)") == "([phone])"
    assert masked("tel:+46701234567") == "tel:[phone]"
    assert masked("Ring 070-123 45 67 kl 18:00") == "Ring [phone] kl 18:00"


# --- payment cards ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1111",  # Visa
        "4111-1111-1111-1111",
        "4111111111111111",
        "5555 5555 5555 4444",  # Mastercard
        "2223 0031 2200 3222",  # Mastercard 2-series
        "3782 822463 10005",  # American Express, 4-6-5
        "6011111111111117",  # Discover
    ],
)
def test_card_numbers_are_masked(number: str) -> None:
    assert redact(f"Kortet {number} gick ut 12/28") == ("Kortet [card] gick ut 12/28", Counter(card=1))


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # fails the Luhn check
        "4111 1111 1111",  # 12 digits: too short
        "4111 1111-1111 1111",  # mixed separators
        "1111 1111 1111 1117",  # Luhn-valid, but no card starts with 1
        "order 7992739871300 shipped",  # Luhn-valid, no card starts with 7
        "1706961600000 ms",  # a timestamp in milliseconds
    ],
)
def test_numbers_that_are_not_card_numbers_stay(text: str) -> None:
    assert redact(text) == (text, Counter())


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_a_card_followed_by_more_digits_is_still_found() -> None:
    assert masked("4111 1111 1111 1111 123") == "[card] 123"


# --- IBAN -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban",
    [
        "SE45 5000 0000 0583 9825 7466",
        "SE4550000000058398257466",
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "DE89 3704 0044 0532 0130 00",
        "NO93 8601 1117 947",  # the shortest, 15 characters
        "FR14 2004 1010 0505 0001 3M02 606",
    ],
)
def test_ibans_are_masked(iban: str) -> None:
    assert redact(f"Betala till {iban} senast fredag") == ("Betala till [iban] senast fredag", Counter(iban=1))


@pytest.mark.parametrize(
    "text",
    [
        "GB82 WEST 1234 5698 7654 33",  # wrong check digits
        "SE45 5000 0000 0583 9825 7467",
        "AB12 CDEF GHIJ KLMN",  # the shape without the checksum
        "ISO8601 and RFC3339ABCDEFG",
    ],
)
def test_iban_lookalikes_stay(text: str) -> None:
    assert redact(text) == (text, Counter())


def test_iban_check() -> None:
    assert iban_valid("se45 5000 0000 0583 9825 7466")  # the check itself ignores case and spaces
    assert not iban_valid("SE45")
    assert not iban_valid("1234 5000 0000 0583 9825 7466")


def test_an_iban_followed_by_a_year_is_masked_alone() -> None:
    assert masked("SE45 5000 0000 0583 9825 7466 2026") == "[iban] 2026"


def test_a_mistyped_iban_is_not_taken_apart_as_phone_or_card_numbers() -> None:
    text = "konto SE45 5000 0000 0583 9825 7467, ring 070-123 45 67"
    assert redact(text) == ("konto SE45 5000 0000 0583 9825 7467, ring [phone]", Counter(phone=1))


# --- secrets ----------------------------------------------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    "token",
    [
        "sk-" + "a1B2c3D4e5F6g7H8i9J0" * 2 + "kLmNoPqR",  # OpenAI
        "sk-proj-Ab3dE_f6Gh9-jK2mN5pQ8rS1tU4vW7xY0zA3bC6dE9",
        "sk-ant-api03-Zx9Qp2Lm4vNb7Tr1Ks8Hd3Wy6Jc0Gf5Ea-AA",  # Anthropic
        "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",  # GitHub
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH",
        "AKIAIOSFODNN7EXAMPLE",  # AWS access key id
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",  # Slack
        "xoxp-2222222222-333333333333-444444444444-abcdef",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",  # Google
        "glpat-xYz12AbC34dEf56GhI78",  # GitLab
        "sk_live_51H8abcDEFghiJKLmno",  # Stripe
        JWT,
    ],
)
def test_api_keys_and_tokens_are_masked(token: str) -> None:
    assert redact(f"nyckeln är {token} ok?") == ("nyckeln är [secret] ok?", Counter(secret=1))


def test_private_key_blocks_are_masked_whole() -> None:
    text = (
        "Här är nyckeln:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx4Ua2Tq0l9bYc7Zk\n"
        "Q8Z3vL1mP0sR7tY4wX9kB2nC6dF5gH8jK1lA3==\n-----END RSA PRIVATE KEY-----\nSpara den!"
    )
    assert redact(text) == ("Här är nyckeln:\n[secret]\nSpara den!", Counter(secret=1))
    openssh = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA -----END OPENSSH PRIVATE KEY-----"
    assert masked(openssh) == "[secret]"
    assert masked("-----BEGIN PGP PRIVATE KEY BLOCK-----\nabc\n-----END PGP PRIVATE KEY BLOCK-----") == "[secret]"


def test_a_private_key_cut_short_masks_its_base64_lines_only() -> None:
    text = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nMIIEowIBAAKCAQEAx4Ua2Tq0l9bYc7Zk\n\nmore later"
    )
    assert masked(text) == "[secret]\n\nmore later"


def test_public_keys_and_certificates_are_not_secrets() -> None:
    text = "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----"
    assert masked(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password: hunter2", "password: [secret]"),
        ("Password = 'correct horse battery'", "Password = '[secret]'"),
        ("lösenord: Sommar2026!", "lösenord: [secret]"),
        ('OPENAI_API_KEY="sk-abc"', 'OPENAI_API_KEY="[secret]"'),
        ("export GITHUB_TOKEN=abc123def", "export GITHUB_TOKEN=[secret]"),
        ('{"client_secret": "s3cr3t value", "id": 7}', '{"client_secret": "[secret]", "id": 7}'),
        ("api-key: 1234-abcd", "api-key: [secret]"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = [secret]"),
        (
            "https://api.example.com/v1?access_token=abcd1234&x=1",
            "https://api.example.com/v1?access_token=[secret]&x=1",
        ),
        ("Authorization: Bearer abcdefghijklmnop1234567890", "Authorization: Bearer [secret]"),
    ],
)
def test_secret_assignments_mask_the_value(text: str, expected: str) -> None:
    assert redact(text) == (expected, Counter(secret=1))


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=512 and tokens: 2048",  # counts of tokens are not tokens
        "token: 42",  # too short to be a secret
        "the password is hunter2",  # prose, not an assignment: a known limit
        "my keyboard: mechanical",
        "sk-learn-is-a-great-library-for-ml",  # no digits: a phrase, not an OpenAI key
        "xoxo-hugs-and-kisses-from-elin",
        "Bearer authentication-mechanisms",
    ],
)
def test_secret_lookalikes_stay(text: str) -> None:
    assert redact(text) == (text, Counter())


@pytest.mark.parametrize(
    "run",
    [
        "q8Z3vL1mP0sR7tY4wX9kB2nC6dF5gH8jK1lA3",  # random base64
        "dGhpcyBpcyBhIHNlY3JldCBrZXkgMTIzNDU2Nzg5MA==",
        "Zx9_Qp2-Lm4vNb7Tr1Ks8Hd3Wy6Jc0Gf5Ea",  # base64url
        "3f2a9c1e5b7d4a6f8e0c2b4d6f8a0c2e4b6d8f0a",  # hex (a git commit looks the same: also masked)
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
    ],
)
def test_long_random_strings_are_masked(run: str) -> None:
    assert redact(f"värde {run} slut") == ("värde [secret] slut", Counter(secret=1))


@pytest.mark.parametrize(
    "text",
    [
        "550e8400-e29b-41d4-a716-446655440000",  # UUIDs are identifiers: never masked
        "550E8400-E29B-41D4-A716-446655440000",
        "{123e4567-e89b-12d3-a456-426614174000}",
        "Wav2Vec2ConformerForPreTrainingOutput",
        "AbstractSingletonProxyFactoryBean2Impl3",
        "state-of-the-art-machine-learning-pipelines-2024",
        "test_redact_masks_private_key_blocks_2",
        "/home/elin/Documents/2024/Kvitton/Q3Report.pdf",
        "Elin-Berg-CV-2024-final-FINAL-v3-edited.docx",
        "00000000000000000000000000000000000",
        "abcdefabcdefabcdefabcdefabcdefabcdef",
        "Supercalifragilisticexpialidocious2024",
    ],
)
def test_long_strings_that_are_not_secrets_stay(text: str) -> None:
    assert redact(text) == (text, Counter())


def test_in_a_url_only_the_random_segment_is_masked() -> None:
    url = "https://github.com/elin/pllm/blob/3f2a9c1e5b7d4a6f8e0c2b4d6f8a0c2e4b6d8f0a/README.md"
    assert masked(url) == "https://github.com/elin/pllm/blob/[secret]/README.md"


# --- all together -----------------------------------------------------------------------------------


def test_counts_per_kind_and_untouched_text_around() -> None:
    text = (
        "Hej! 🎉 Maila elin@example.com eller ring +46 70 123 45 67 / 070-765 43 21.\n"
        "Kort 4111 1111 1111 1111, konto SE45 5000 0000 0583 9825 7466,\n"
        "token: ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8\n"
        "مرحبا — vi ses 2026-02-03 kl 18:30, nummerlapp 18342."
    )
    result, counts = redact(text)
    assert result == (
        "Hej! 🎉 Maila [email] eller ring [phone] / [phone].\n"
        "Kort [card], konto [iban],\n"
        "token: [secret]\n"
        "مرحبا — vi ses 2026-02-03 kl 18:30, nummerlapp 18342."
    )
    assert counts == Counter(email=1, phone=2, card=1, iban=1, secret=1)


def test_redaction_is_idempotent() -> None:
    text = "password: hunter2, mail a@b.se, ring 070-123 45 67, kort 4111111111111111, SE4550000000058398257466"
    once, _ = redact(text)
    assert redact(once) == (once, Counter())


def test_plain_text_comes_back_unchanged() -> None:
    for text in ["", "   ", "Hej! Vi ses på fredag 🙂", "مرحبا بالعالم", "Köp 2 liter mjölk"]:
        assert redact(text) == (text, Counter())


def test_adversarial_input_stays_linear() -> None:
    """Long runs that keep the patterns guessing finish quickly (no catastrophic backtracking)."""
    texts = [
        " ".join("1234" for _ in range(20_000)),
        "-".join("12" for _ in range(20_000)) + "x",
        "_".join("ab" for _ in range(20_000)) + " token",
        "aB3" * 20_000 + "===x",
        "a." * 30_000 + "@",
        "-----BEGIN RSA PRIVATE KEY-----" + " word" * 20_000,
    ]
    start = time.perf_counter()
    for text in texts:
        redact(text)
    assert time.perf_counter() - start < 60  # about 0.5 s; exponential backtracking would take hours
