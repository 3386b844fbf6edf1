"""The catalog keys of the config: input.table or input.path, output.database for Delta lakes."""

import pytest

from pipelines.config import ConfigError, parse_config


def test_input_table_or_path_not_both():
    config = parse_config({"input": {"table": "main.corpora.news"}})
    assert config.input.table == "main.corpora.news" and config.input.source == "table main.corpora.news"
    with pytest.raises(ConfigError, match=r"give input\.path or input\.table, not both"):
        parse_config({"input": {"table": "corpora.news", "path": "/data/news"}})
    with pytest.raises(ConfigError, match=r"'input\.table'.*'news; DROP' is not a table name"):
        parse_config({"input": {"table": "news; DROP"}})


def test_output_database_names_delta_tables():
    output = parse_config({"output": {"database": "main.corpora", "table_prefix": "news_"}}).output
    assert output.table_name("token_embeddings") == "main.corpora.news_token_embeddings"
    assert parse_config({}).output.table_name("token_embeddings") is None
    with pytest.raises(ConfigError, match=r"output\.database registers Delta tables: it needs output\.format: delta"):
        parse_config({"output": {"database": "corpora", "format": "parquet"}})
    with pytest.raises(ConfigError, match=r"output\.table_prefix needs output\.database"):
        parse_config({"output": {"table_prefix": "news_"}})
    with pytest.raises(ConfigError, match=r"'a\.b\.c' is not a database name"):
        parse_config({"output": {"database": "a.b.c"}})


@pytest.mark.parametrize("section, key, value", [
    ("output", "database", "corpora\n"), ("output", "database", "main.corpora\r"), ("output", "database", "db\x00"),
    ("output", "table_prefix", "news_\n"), ("output", "table_prefix", "news\t_"),
    ("input", "table", "corpora.news\n"),
])
def test_a_name_with_a_control_character_is_refused_naming_the_key(section, key, value):
    settings = {"output": {"database": "corpora"}} if key == "table_prefix" else {}
    settings.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=rf"'{section}\.{key}'"):
        parse_config(settings)
