from eco_rails.cli import app

app()
