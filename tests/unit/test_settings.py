from pixyproxy.container import file_root, sqlite_path
from pixyproxy.settings import Settings


def test_defaults_are_the_embedded_stack(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = Settings()
    assert settings.database_scheme == "sqlite" and settings.storage_scheme == "file"
    assert settings.generator == "offline"
    assert sqlite_path(settings.database_url) == "pixyproxy-data/pixyproxy.db"
    assert str(file_root(settings.storage_url)) == "pixyproxy-data/images"


def test_course_db_variables_build_a_mysql_url(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DB_HOST": "db.example",
        "DB_PORT": "3307",
        "DB_USER": "app",
        "DB_PASSWORD": "p@ss:w/rd",
        "DB_NAME": "images",
    }.items():
        monkeypatch.setenv(name, value)
    assert Settings().database_url == "mysql://app:p%40ss%3Aw%2Frd@db.example:3307/images"


def test_explicit_database_url_wins_over_db_variables(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DB_HOST", "db.example")
    monkeypatch.setenv("PIXYPROXY_DATABASE_URL", "sqlite:///x.db")
    assert Settings().database_url == "sqlite:///x.db"


def test_dotenv_file_is_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PIXYPROXY_MAX_PROMPT_LENGTH=77\n")
    assert Settings().max_prompt_length == 77


def test_absolute_file_url():
    assert str(file_root("file:///var/lib/pixy/images")) == "/var/lib/pixy/images"
    assert sqlite_path("sqlite:////var/lib/pixy/db.sqlite") == "/var/lib/pixy/db.sqlite"
