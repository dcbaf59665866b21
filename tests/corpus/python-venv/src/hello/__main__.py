print("hello from the venv")
