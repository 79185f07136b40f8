from . import markdown

print(markdown(), end="")
