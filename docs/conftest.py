# The course gallery that the docs build generates (docs/course/) holds copies of the example scripts
# and their pages; pytest must neither import the scripts nor doctest the pages.
collect_ignore = ["course", "_build", "_ext"]
