"""Demo data that tells the story: `nurture seed-demo` (and `nurture up` on an empty database).

Six months of leads given back by sales, nurtured, engaged, recycled, accepted, rejected again
and lapsed, made by the real services under a simulated clock (`simulation`), from a cast
(`cast`) and their behaviour (`behaviour`) drawn from one seed.
"""
