"""One function keeps credentials out of rows, files and logs: instag_hf.redact."""

import logging

from instag_hf.redact import MASK, RedactingFilter, redact, register_secret


def test_registered_secrets_are_masked_in_any_text_also_url_encoded():
    register_secret("gw-Key/with+odd=chars-12345")
    text = "bad key gw-Key/with+odd=chars-12345 (was gw-Key%2Fwith%2Bodd%3Dchars-12345)"
    assert "gw-Key" not in redact(text) and redact(text).count(MASK) == 2


def test_short_values_are_not_treated_as_secrets():
    register_secret("abc")
    assert redact("abc def") == "abc def"


def test_credentials_in_urls_and_key_shaped_tokens_are_masked_unregistered():
    assert redact("POST http://user:s3cr3tKEY@host:8000/v1/completions") == "POST http://***@host:8000/v1/completions"
    assert redact("http://tok3n1234@host/v1") == "http://***@host/v1"
    assert redact("Authorization: Bearer abc.def.ghi") == "Authorization: Bearer ***"
    assert redact("key sk-proj-ABCDEFGHIJKLMNOP rejected") == "key sk-*** rejected"
    assert redact('{"api_key": "zz-1234567"}') == '{"api_key": "***"}'
    assert redact("https://api.openai.com/v1/chat/completions") == "https://api.openai.com/v1/chat/completions"
    assert redact(None) is None and redact("") == ""


def test_the_log_filter_redacts_messages_arguments_and_tracebacks():
    register_secret("LOGGED-SECRET-VALUE-42")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("instag_hf.test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("server said %s", "invalid key LOGGED-SECRET-VALUE-42")
        try:
            raise RuntimeError("http://u:LOGGED-SECRET-VALUE-42@h/v1 refused")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert records and all("LOGGED-SECRET-VALUE-42" not in r for r in records)
    assert "RuntimeError" in records[1]


def test_the_package_logger_redacts_every_child_logger(caplog):
    import instag_hf

    handler = logging.getLogger("instag_hf").handlers[0]
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    assert instag_hf  # the handler is installed on import
