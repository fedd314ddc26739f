"""Held-out code tasks for bench/bench_code_selection.py (issue 27, item 1).

Each task has
  * ``prompt``: the question a solver sees (it names the function and its edge cases);
  * ``given``: WEAK tests (1-3 asserts), what a seed or generated task typically carries; the
    pipeline verifies and probes with these only;
  * ``heldout``: an INDEPENDENT test set (>= 6 asserts, edge cases included), written
    separately from ``given`` and never shown to the pipeline; a kept answer counts as wrong
    when it fails any of these;
  * ``correct``: correct solutions written in different ways;
  * ``wrong``: a MUTATION-STYLE POOL of plausible wrong solutions (off-by-one, a missed branch,
    a wrong edge case...) -- written by hand for this benchmark, not sampled from a model.
    Most pass the weak given tests, which is what makes them dangerous.

The benchmark checks these labels in the sandbox before it uses them (every correct variant
passes given + held-out; every wrong one fails held-out).
"""

from __future__ import annotations

from textwrap import dedent


def _c(src: str) -> str:
    return dedent(src).strip("\n") + "\n"


def _task(tid: str, prompt: str, given: str, heldout: str, correct: list[str],
          wrong: dict[str, str]) -> dict:
    entry = prompt.split("`")[1].split("(")[0]
    return {"id": tid, "prompt": prompt, "entry": entry, "given": _c(given),
            "heldout": _c(heldout), "correct": [_c(s) for s in correct],
            "wrong": {k: _c(v) for k, v in wrong.items()}}


TASKS: list[dict] = [
    _task("fizzbuzz",
          "Write a Python function `fizzbuzz(n)` that returns 'Fizz' when n is a multiple of 3, "
          "'Buzz' when it is a multiple of 5, 'FizzBuzz' when it is a multiple of both, and "
          "str(n) otherwise.",
          """
          assert fizzbuzz(3) == 'Fizz'
          assert fizzbuzz(5) == 'Buzz'
          assert fizzbuzz(7) == '7'
          """,
          """
          assert fizzbuzz(15) == 'FizzBuzz'
          assert fizzbuzz(30) == 'FizzBuzz'
          assert fizzbuzz(9) == 'Fizz'
          assert fizzbuzz(10) == 'Buzz'
          assert fizzbuzz(1) == '1'
          assert fizzbuzz(98) == '98'
          assert fizzbuzz(45) == 'FizzBuzz'
          """,
          ["""
           def fizzbuzz(n):
               if n % 15 == 0:
                   return 'FizzBuzz'
               if n % 3 == 0:
                   return 'Fizz'
               if n % 5 == 0:
                   return 'Buzz'
               return str(n)
           """,
           """
           def fizzbuzz(n):
               out = ('Fizz' if n % 3 == 0 else '') + ('Buzz' if n % 5 == 0 else '')
               return out or str(n)
           """],
          {"no 15 branch": """
           def fizzbuzz(n):
               if n % 3 == 0:
                   return 'Fizz'
               elif n % 5 == 0:
                   return 'Buzz'
               return str(n)
           """,
           "5 checked first": """
           def fizzbuzz(n):
               if n % 5 == 0:
                   return 'Buzz'
               if n % 3 == 0:
                   return 'Fizz'
               return str(n)
           """}),
    _task("is_leap",
          "Write a Python function `is_leap(year)` that returns True when year is a leap year "
          "in the Gregorian calendar (divisible by 4, except centuries not divisible by 400).",
          """
          assert is_leap(2024) is True
          assert is_leap(2023) is False
          """,
          """
          assert is_leap(1900) is False
          assert is_leap(2000) is True
          assert is_leap(2100) is False
          assert is_leap(1996) is True
          assert is_leap(2001) is False
          assert is_leap(2400) is True
          """,
          ["""
           def is_leap(year):
               return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
           """,
           """
           def is_leap(year):
               if year % 400 == 0:
                   return True
               if year % 100 == 0:
                   return False
               return year % 4 == 0
           """],
          {"only div by 4": """
           def is_leap(year):
               return year % 4 == 0
           """,
           "misses 400 rule": """
           def is_leap(year):
               return year % 4 == 0 and year % 100 != 0
           """}),
    _task("sum_list",
          "Write a Python function `sum_list(xs)` that returns the sum of a list of integers "
          "(0 for an empty list).",
          """
          assert sum_list([1, 2, 3]) == 6
          """,
          """
          assert sum_list([]) == 0
          assert sum_list([-1, 1]) == 0
          assert sum_list([5]) == 5
          assert sum_list([10, -20]) == -10
          assert sum_list([0, 0]) == 0
          assert sum_list(list(range(100))) == 4950
          """,
          ["""
           def sum_list(xs):
               return sum(xs)
           """,
           """
           def sum_list(xs):
               total = 0
               for x in xs:
                   total += x
               return total
           """],
          {"positives only": """
           def sum_list(xs):
               return sum(x for x in xs if x > 0)
           """,
           "recursion fails on empty": """
           def sum_list(xs):
               if len(xs) == 1:
                   return xs[0]
               return xs[0] + sum_list(xs[1:])
           """}),
    _task("max_of",
          "Write a Python function `max_of(xs)` that returns the largest element of a list of "
          "numbers, or None when the list is empty.",
          """
          assert max_of([1, 5, 3]) == 5
          """,
          """
          assert max_of([-3, -1, -2]) == -1
          assert max_of([]) is None
          assert max_of([7]) == 7
          assert max_of([2, 2]) == 2
          assert max_of([0, -1]) == 0
          assert max_of([-5]) == -5
          """,
          ["""
           def max_of(xs):
               return max(xs) if xs else None
           """,
           """
           def max_of(xs):
               best = None
               for x in xs:
                   if best is None or x > best:
                       best = x
               return best
           """],
          {"starts at 0": """
           def max_of(xs):
               m = 0
               for x in xs:
                   if x > m:
                       m = x
               return m
           """,
           "no empty check": """
           def max_of(xs):
               return max(xs)
           """,
           "0 for empty": """
           def max_of(xs):
               return sorted(xs)[-1] if xs else 0
           """}),
    _task("reverse_words",
          "Write a Python function `reverse_words(s)` that returns the words of s (separated by "
          "any whitespace) in reverse order, joined by single spaces.",
          """
          assert reverse_words('hello world') == 'world hello'
          """,
          """
          assert reverse_words('') == ''
          assert reverse_words('a') == 'a'
          assert reverse_words('a b c') == 'c b a'
          assert reverse_words('  lead trail  ') == 'trail lead'
          assert reverse_words('one  two') == 'two one'
          assert reverse_words('x\\ty') == 'y x'
          """,
          ["""
           def reverse_words(s):
               return ' '.join(reversed(s.split()))
           """,
           """
           def reverse_words(s):
               words = s.split()
               words.reverse()
               return ' '.join(words)
           """],
          {"split on single space": """
           def reverse_words(s):
               return ' '.join(s.split(' ')[::-1])
           """,
           "swaps first and last": """
           def reverse_words(s):
               w = s.split()
               w[0], w[-1] = w[-1], w[0]
               return ' '.join(w)
           """}),
    _task("count_vowels",
          "Write a Python function `count_vowels(s)` that returns how many vowels (a, e, i, o, u, "
          "upper or lower case) the string s contains.",
          """
          assert count_vowels('hello') == 2
          """,
          """
          assert count_vowels('AEIOU') == 5
          assert count_vowels('') == 0
          assert count_vowels('xyz') == 0
          assert count_vowels('Programming') == 3
          assert count_vowels('aAbB') == 2
          assert count_vowels('queue') == 4
          """,
          ["""
           def count_vowels(s):
               return sum(1 for c in s.lower() if c in 'aeiou')
           """,
           """
           def count_vowels(s):
               n = 0
               for ch in s:
                   if ch in 'aeiouAEIOU':
                       n += 1
               return n
           """],
          {"lower case only": """
           def count_vowels(s):
               return sum(c in 'aeiou' for c in s)
           """,
           "counts y": """
           def count_vowels(s):
               return sum(1 for c in s.lower() if c in 'aeiouy')
           """}),
    _task("factorial",
          "Write a Python function `factorial(n)` that returns n! for an integer n >= 0 "
          "(0! is 1).",
          """
          assert factorial(5) == 120
          assert factorial(3) == 6
          """,
          """
          assert factorial(0) == 1
          assert factorial(1) == 1
          assert factorial(2) == 2
          assert factorial(6) == 720
          assert factorial(10) == 3628800
          assert factorial(12) == 479001600
          """,
          ["""
           def factorial(n):
               r = 1
               for i in range(2, n + 1):
                   r *= i
               return r
           """,
           """
           def factorial(n):
               return 1 if n <= 1 else n * factorial(n - 1)
           """],
          {"base case 1 only": """
           def factorial(n):
               if n == 1:
                   return 1
               return n * factorial(n - 1)
           """,
           "starts from n": """
           def factorial(n):
               r = n
               for i in range(2, n):
                   r *= i
               return r
           """}),
    _task("is_palindrome",
          "Write a Python function `is_palindrome(s)` that returns True when s reads the same "
          "backwards, ignoring case and every character that is not a letter or digit.",
          """
          assert is_palindrome('racecar') is True
          assert is_palindrome('hello') is False
          """,
          """
          assert is_palindrome('A man, a plan, a canal: Panama') is True
          assert is_palindrome('') is True
          assert is_palindrome('No lemon, no melon') is True
          assert is_palindrome('ab') is False
          assert is_palindrome('Aa') is True
          assert is_palindrome('12321') is True
          assert is_palindrome('123') is False
          """,
          ["""
           def is_palindrome(s):
               t = [c.lower() for c in s if c.isalnum()]
               return t == t[::-1]
           """,
           """
           def is_palindrome(s):
               i, j = 0, len(s) - 1
               while i < j:
                   if not s[i].isalnum():
                       i += 1
                   elif not s[j].isalnum():
                       j -= 1
                   elif s[i].lower() != s[j].lower():
                       return False
                   else:
                       i, j = i + 1, j - 1
               return True
           """],
          {"case sensitive, keeps punctuation": """
           def is_palindrome(s):
               return s == s[::-1]
           """,
           "keeps punctuation": """
           def is_palindrome(s):
               s = s.lower()
               return s == s[::-1]
           """}),
    _task("fib",
          "Write a Python function `fib(n)` that returns the n-th Fibonacci number, with "
          "fib(0) = 0 and fib(1) = 1.",
          """
          assert fib(6) == 8
          """,
          """
          assert fib(0) == 0
          assert fib(1) == 1
          assert fib(2) == 1
          assert fib(7) == 13
          assert fib(10) == 55
          assert fib(20) == 6765
          """,
          ["""
           def fib(n):
               a, b = 0, 1
               for _ in range(n):
                   a, b = b, a + b
               return a
           """,
           """
           def fib(n):
               if n < 2:
                   return n
               prev, cur = 0, 1
               for _ in range(n - 1):
                   prev, cur = cur, prev + cur
               return cur
           """],
          {"fib(0) is 1": """
           def fib(n):
               if n <= 2:
                   return 1
               a, b = 1, 1
               for _ in range(n - 2):
                   a, b = b, a + b
               return b
           """}),
    _task("second_largest",
          "Write a Python function `second_largest(xs)` that returns the second largest "
          "distinct value of the list xs, or None when xs has fewer than two distinct values.",
          """
          assert second_largest([1, 3, 2]) == 2
          """,
          """
          assert second_largest([5, 5, 4]) == 4
          assert second_largest([1]) is None
          assert second_largest([2, 2]) is None
          assert second_largest([-1, -2, -3]) == -2
          assert second_largest([10, 9, 10]) == 9
          assert second_largest([]) is None
          """,
          ["""
           def second_largest(xs):
               vals = sorted(set(xs))
               return vals[-2] if len(vals) >= 2 else None
           """,
           """
           def second_largest(xs):
               first = second = None
               for x in xs:
                   if first is None or x > first:
                       first, second = x, first
                   elif x != first and (second is None or x > second):
                       second = x
               return second
           """],
          {"ignores duplicates": """
           def second_largest(xs):
               return sorted(xs)[-2] if len(xs) >= 2 else None
           """,
           "no None case": """
           def second_largest(xs):
               return sorted(set(xs))[-2]
           """}),
    _task("celsius_to_fahrenheit",
          "Write a Python function `celsius_to_fahrenheit(c)` that converts a temperature in "
          "degrees Celsius to degrees Fahrenheit (F = C * 9 / 5 + 32), as a float.",
          """
          assert celsius_to_fahrenheit(0) == 32
          assert celsius_to_fahrenheit(100) == 212
          """,
          """
          assert abs(celsius_to_fahrenheit(-40) - (-40)) < 1e-9
          assert abs(celsius_to_fahrenheit(37) - 98.6) < 1e-9
          assert abs(celsius_to_fahrenheit(10) - 50) < 1e-9
          assert abs(celsius_to_fahrenheit(-10) - 14) < 1e-9
          assert abs(celsius_to_fahrenheit(1) - 33.8) < 1e-9
          assert abs(celsius_to_fahrenheit(36.6) - 97.88) < 1e-9
          """,
          ["""
           def celsius_to_fahrenheit(c):
               return c * 9 / 5 + 32
           """,
           """
           def celsius_to_fahrenheit(c):
               return 32 + 1.8 * c
           """],
          {"integer division": """
           def celsius_to_fahrenheit(c):
               return c * 9 // 5 + 32
           """,
           "truncates": """
           def celsius_to_fahrenheit(c):
               return int(c * 9 / 5 + 32)
           """}),
    _task("gcd",
          "Write a Python function `gcd(a, b)` that returns the greatest common divisor of two "
          "non-negative integers (gcd(n, 0) is n, gcd(0, 0) is 0).",
          """
          assert gcd(12, 8) == 4
          """,
          """
          assert gcd(0, 5) == 5
          assert gcd(7, 0) == 7
          assert gcd(17, 5) == 1
          assert gcd(100, 10) == 10
          assert gcd(0, 0) == 0
          assert gcd(8, 12) == 4
          """,
          ["""
           def gcd(a, b):
               while b:
                   a, b = b, a % b
               return a
           """,
           """
           def gcd(a, b):
               return a if b == 0 else gcd(b, a % b)
           """],
          {"trial division from min": """
           def gcd(a, b):
               for d in range(min(a, b), 0, -1):
                   if a % d == 0 and b % d == 0:
                       return d
               return 1
           """}),
    _task("count_words",
          "Write a Python function `count_words(s)` that returns the number of words in s, "
          "where words are separated by any amount of whitespace.",
          """
          assert count_words('hello world') == 2
          """,
          """
          assert count_words('') == 0
          assert count_words('   ') == 0
          assert count_words('one') == 1
          assert count_words(' a  b ') == 2
          assert count_words('a\\tb\\nc') == 3
          assert count_words('x y z w') == 4
          """,
          ["""
           def count_words(s):
               return len(s.split())
           """,
           """
           def count_words(s):
               n, inside = 0, False
               for ch in s:
                   if ch.isspace():
                       inside = False
                   elif not inside:
                       inside = True
                       n += 1
               return n
           """],
          {"split on single space": """
           def count_words(s):
               return len(s.split(' '))
           """,
           "counts spaces": """
           def count_words(s):
               return s.count(' ') + 1
           """}),
    _task("flatten",
          "Write a Python function `flatten(xs)` that flattens a list of lists by exactly one "
          "level: flatten([[1, 2], [3]]) is [1, 2, 3]; deeper lists are kept as elements.",
          """
          assert flatten([[1, 2], [3]]) == [1, 2, 3]
          """,
          """
          assert flatten([]) == []
          assert flatten([[]]) == []
          assert flatten([[1], [2], [3]]) == [1, 2, 3]
          assert flatten([[1, [2]]]) == [1, [2]]
          assert flatten([[], [4, 5]]) == [4, 5]
          assert flatten([['a'], ['b', 'c']]) == ['a', 'b', 'c']
          """,
          ["""
           def flatten(xs):
               return [x for sub in xs for x in sub]
           """,
           """
           def flatten(xs):
               out = []
               for sub in xs:
                   out.extend(sub)
               return out
           """],
          {"flattens fully": """
           def flatten(xs):
               out = []
               for x in xs:
                   if isinstance(x, list):
                       out.extend(flatten(x))
                   else:
                       out.append(x)
               return out
           """,
           "first two only": """
           def flatten(xs):
               return xs[0] + xs[1] if len(xs) > 1 else xs[0]
           """}),
    _task("remove_duplicates",
          "Write a Python function `remove_duplicates(xs)` that returns xs without repeated "
          "elements, keeping the first occurrence of each in the original order.",
          """
          assert remove_duplicates([1, 2, 2, 3]) == [1, 2, 3]
          """,
          """
          assert remove_duplicates([3, 1, 3, 2, 1]) == [3, 1, 2]
          assert remove_duplicates([]) == []
          assert remove_duplicates([1, 1, 1]) == [1]
          assert remove_duplicates(['b', 'a', 'b']) == ['b', 'a']
          assert remove_duplicates([2, 1]) == [2, 1]
          assert remove_duplicates([5]) == [5]
          """,
          ["""
           def remove_duplicates(xs):
               seen, out = set(), []
               for x in xs:
                   if x not in seen:
                       seen.add(x)
                       out.append(x)
               return out
           """,
           """
           def remove_duplicates(xs):
               return list(dict.fromkeys(xs))
           """],
          {"sorts": """
           def remove_duplicates(xs):
               return sorted(set(xs))
           """,
           "adjacent only": """
           def remove_duplicates(xs):
               return [x for i, x in enumerate(xs) if i == 0 or x != xs[i - 1]]
           """}),
    _task("capitalize_words",
          "Write a Python function `capitalize_words(s)` that upper-cases the first character "
          "of every word and lower-cases the rest; words are separated by single spaces.",
          """
          assert capitalize_words('hello world') == 'Hello World'
          """,
          """
          assert capitalize_words('') == ''
          assert capitalize_words('HELLO') == 'Hello'
          assert capitalize_words('a b') == 'A B'
          assert capitalize_words("it's ok") == "It's Ok"
          assert capitalize_words('mIxEd cAsE') == 'Mixed Case'
          assert capitalize_words('x') == 'X'
          """,
          ["""
           def capitalize_words(s):
               return ' '.join(w.capitalize() for w in s.split(' '))
           """,
           """
           def capitalize_words(s):
               words = []
               for w in s.split(' '):
                   words.append(w[:1].upper() + w[1:].lower())
               return ' '.join(words)
           """],
          {"str.title": """
           def capitalize_words(s):
               return s.title()
           """,
           "rest unchanged": """
           def capitalize_words(s):
               return ' '.join(w[0].upper() + w[1:] for w in s.split(' '))
           """}),
    _task("binary_search",
          "Write a Python function `binary_search(xs, target)` that returns the index of target "
          "in the sorted list xs, or -1 when it is absent.",
          """
          assert binary_search([1, 3, 5, 7], 5) == 2
          assert binary_search([1, 3, 5, 7], 4) == -1
          """,
          """
          assert binary_search([], 1) == -1
          assert binary_search([1], 1) == 0
          assert binary_search([1, 3, 5, 7], 1) == 0
          assert binary_search([1, 3, 5, 7], 7) == 3
          assert binary_search([1, 3, 5, 7], 8) == -1
          assert binary_search([2, 4], 0) == -1
          """,
          ["""
           def binary_search(xs, target):
               lo, hi = 0, len(xs) - 1
               while lo <= hi:
                   mid = (lo + hi) // 2
                   if xs[mid] == target:
                       return mid
                   if xs[mid] < target:
                       lo = mid + 1
                   else:
                       hi = mid - 1
               return -1
           """,
           """
           import bisect

           def binary_search(xs, target):
               i = bisect.bisect_left(xs, target)
               return i if i < len(xs) and xs[i] == target else -1
           """],
          {"lo < hi": """
           def binary_search(xs, target):
               lo, hi = 0, len(xs) - 1
               while lo < hi:
                   mid = (lo + hi) // 2
                   if xs[mid] == target:
                       return mid
                   if xs[mid] < target:
                       lo = mid + 1
                   else:
                       hi = mid - 1
               return -1
           """}),
    _task("run_length_encode",
          "Write a Python function `run_length_encode(s)` that encodes each run of equal "
          "characters as the character followed by the run length: 'aaabcc' -> 'a3b1c2'.",
          """
          assert run_length_encode('aab') == 'a2b1'
          """,
          """
          assert run_length_encode('') == ''
          assert run_length_encode('a') == 'a1'
          assert run_length_encode('aaabcc') == 'a3b1c2'
          assert run_length_encode('abc') == 'a1b1c1'
          assert run_length_encode('aaaaaaaaaaaa') == 'a12'
          assert run_length_encode('abba') == 'a1b2a1'
          """,
          ["""
           def run_length_encode(s):
               out, i = [], 0
               while i < len(s):
                   j = i
                   while j < len(s) and s[j] == s[i]:
                       j += 1
                   out.append(s[i] + str(j - i))
                   i = j
               return ''.join(out)
           """,
           """
           from itertools import groupby

           def run_length_encode(s):
               return ''.join(k + str(len(list(g))) for k, g in groupby(s))
           """],
          {"counts, not runs": """
           from collections import Counter

           def run_length_encode(s):
               return ''.join(k + str(v) for k, v in Counter(s).items())
           """,
           "fails on empty": """
           def run_length_encode(s):
               out, cur, n = '', s[0], 0
               for ch in s:
                   if ch == cur:
                       n += 1
                   else:
                       out += cur + str(n)
                       cur, n = ch, 1
               return out + cur + str(n)
           """}),
    _task("digit_sum",
          "Write a Python function `digit_sum(n)` that returns the sum of the decimal digits of "
          "the integer n (for a negative n, of its absolute value).",
          """
          assert digit_sum(123) == 6
          """,
          """
          assert digit_sum(0) == 0
          assert digit_sum(-45) == 9
          assert digit_sum(9) == 9
          assert digit_sum(1000) == 1
          assert digit_sum(99999) == 45
          assert digit_sum(-7) == 7
          """,
          ["""
           def digit_sum(n):
               return sum(int(c) for c in str(abs(n)))
           """,
           """
           def digit_sum(n):
               n, total = abs(n), 0
               while n:
                   total += n % 10
                   n //= 10
               return total
           """],
          {"no abs (ValueError)": """
           def digit_sum(n):
               return sum(int(c) for c in str(n))
           """,
           "no abs (0)": """
           def digit_sum(n):
               total = 0
               while n > 0:
                   total += n % 10
                   n //= 10
               return total
           """}),
    _task("is_prime",
          "Write a Python function `is_prime(n)` that returns True when the integer n is a prime "
          "number and False otherwise (numbers below 2 are not prime).",
          """
          assert is_prime(7) is True
          assert is_prime(8) is False
          """,
          """
          assert is_prime(1) is False
          assert is_prime(2) is True
          assert is_prime(0) is False
          assert is_prime(9) is False
          assert is_prime(97) is True
          assert is_prime(25) is False
          assert is_prime(-3) is False
          """,
          ["""
           def is_prime(n):
               if n < 2:
                   return False
               i = 2
               while i * i <= n:
                   if n % i == 0:
                       return False
                   i += 1
               return True
           """,
           """
           def is_prime(n):
               return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))
           """],
          {"no n < 2 check": """
           def is_prime(n):
               for i in range(2, n):
                   if n % i == 0:
                       return False
               return True
           """,
           "sqrt bound off by one": """
           def is_prime(n):
               if n < 2:
                   return False
               for i in range(2, int(n ** 0.5)):
                   if n % i == 0:
                       return False
               return True
           """}),
    _task("merge_sorted",
          "Write a Python function `merge_sorted(a, b)` that merges two sorted lists into one "
          "sorted list, keeping duplicates.",
          """
          assert merge_sorted([1, 3], [2, 4]) == [1, 2, 3, 4]
          """,
          """
          assert merge_sorted([], []) == []
          assert merge_sorted([1], []) == [1]
          assert merge_sorted([], [2]) == [2]
          assert merge_sorted([1, 1], [1]) == [1, 1, 1]
          assert merge_sorted([5, 6], [1, 2]) == [1, 2, 5, 6]
          assert merge_sorted([1, 4, 9], [2, 3]) == [1, 2, 3, 4, 9]
          """,
          ["""
           def merge_sorted(a, b):
               out, i, j = [], 0, 0
               while i < len(a) and j < len(b):
                   if a[i] <= b[j]:
                       out.append(a[i])
                       i += 1
                   else:
                       out.append(b[j])
                       j += 1
               return out + a[i:] + b[j:]
           """,
           """
           def merge_sorted(a, b):
               return sorted(a + b)
           """],
          {"forgets a's tail": """
           def merge_sorted(a, b):
               out, i, j = [], 0, 0
               while i < len(a) and j < len(b):
                   if a[i] <= b[j]:
                       out.append(a[i])
                       i += 1
                   else:
                       out.append(b[j])
                       j += 1
               return out + b[j:]
           """,
           "drops duplicates": """
           def merge_sorted(a, b):
               return sorted(set(a + b))
           """}),
    _task("chunk",
          "Write a Python function `chunk(xs, k)` that splits the list xs into consecutive "
          "chunks of size k (k >= 1); the last chunk may be shorter.",
          """
          assert chunk([1, 2, 3, 4], 2) == [[1, 2], [3, 4]]
          """,
          """
          assert chunk([], 3) == []
          assert chunk([1, 2, 3], 2) == [[1, 2], [3]]
          assert chunk([1], 5) == [[1]]
          assert chunk([1, 2, 3], 1) == [[1], [2], [3]]
          assert chunk([1, 2, 3, 4, 5], 3) == [[1, 2, 3], [4, 5]]
          assert chunk(['a', 'b'], 2) == [['a', 'b']]
          """,
          ["""
           def chunk(xs, k):
               return [xs[i:i + k] for i in range(0, len(xs), k)]
           """,
           """
           def chunk(xs, k):
               out, cur = [], []
               for x in xs:
                   cur.append(x)
                   if len(cur) == k:
                       out.append(cur)
                       cur = []
               if cur:
                   out.append(cur)
               return out
           """],
          {"drops the short tail": """
           def chunk(xs, k):
               return [xs[i:i + k] for i in range(0, len(xs) - k + 1, k)]
           """,
           "count by floor division": """
           def chunk(xs, k):
               return [xs[i * k:(i + 1) * k] for i in range(len(xs) // k)]
           """}),
    _task("roman_to_int",
          "Write a Python function `roman_to_int(s)` that converts a Roman numeral (I, V, X, L, "
          "C, D, M, with subtractive pairs such as IV and CM) to an integer.",
          """
          assert roman_to_int('III') == 3
          assert roman_to_int('XII') == 12
          """,
          """
          assert roman_to_int('IV') == 4
          assert roman_to_int('IX') == 9
          assert roman_to_int('MCMXCIV') == 1994
          assert roman_to_int('LVIII') == 58
          assert roman_to_int('XL') == 40
          assert roman_to_int('MMXXIV') == 2024
          """,
          ["""
           def roman_to_int(s):
               v = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}
               total = 0
               for i, c in enumerate(s):
                   if i + 1 < len(s) and v[c] < v[s[i + 1]]:
                       total -= v[c]
                   else:
                       total += v[c]
               return total
           """,
           """
           def roman_to_int(s):
               vals = dict(zip('IVXLCDM', (1, 5, 10, 50, 100, 500, 1000)))
               total, prev = 0, 0
               for c in reversed(s):
                   x = vals[c]
                   total += -x if x < prev else x
                   prev = max(prev, x)
               return total
           """],
          {"no subtraction": """
           def roman_to_int(s):
               v = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}
               return sum(v[c] for c in s)
           """}),
    _task("most_common_char",
          "Write a Python function `most_common_char(s)` that returns the character occurring "
          "most often in s; on a tie the one that appears first in s; None for an empty string.",
          """
          assert most_common_char('aab') == 'a'
          """,
          """
          assert most_common_char('abb') == 'b'
          assert most_common_char('abab') == 'a'
          assert most_common_char('x') == 'x'
          assert most_common_char('bbaa') == 'b'
          assert most_common_char('hello') == 'l'
          assert most_common_char('') is None
          """,
          ["""
           def most_common_char(s):
               best, n = None, 0
               for c in s:
                   k = s.count(c)
                   if k > n:
                       best, n = c, k
               return best
           """,
           """
           from collections import Counter

           def most_common_char(s):
               return Counter(s).most_common(1)[0][0] if s else None
           """],
          {"alphabetical tie-break": """
           def most_common_char(s):
               return max(sorted(set(s)), key=s.count) if s else None
           """,
           "no empty check": """
           from collections import Counter

           def most_common_char(s):
               return Counter(s).most_common(1)[0][0]
           """}),
    _task("clamp",
          "Write a Python function `clamp(x, lo, hi)` that returns x limited to the closed "
          "range [lo, hi] (lo <= hi).",
          """
          assert clamp(5, 0, 10) == 5
          assert clamp(-1, 0, 10) == 0
          """,
          """
          assert clamp(11, 0, 10) == 10
          assert clamp(0, 0, 10) == 0
          assert clamp(10, 0, 10) == 10
          assert clamp(3, 3, 3) == 3
          assert clamp(-5, -10, -1) == -5
          assert clamp(100, -10, -1) == -1
          """,
          ["""
           def clamp(x, lo, hi):
               return max(lo, min(x, hi))
           """,
           """
           def clamp(x, lo, hi):
               if x < lo:
                   return lo
               if x > hi:
                   return hi
               return x
           """],
          {"no upper bound": """
           def clamp(x, lo, hi):
               return max(lo, x)
           """,
           "hi exclusive": """
           def clamp(x, lo, hi):
               return min(max(x, lo), hi - 1)
           """}),
    _task("count_occurrences",
          "Write a Python function `count_occurrences(s, sub)` that counts the occurrences of "
          "the non-empty string sub in s, overlapping ones included ('aaa' has 2 of 'aa').",
          """
          assert count_occurrences('hello', 'l') == 2
          """,
          """
          assert count_occurrences('aaa', 'aa') == 2
          assert count_occurrences('', 'a') == 0
          assert count_occurrences('abc', 'd') == 0
          assert count_occurrences('abababa', 'aba') == 3
          assert count_occurrences('aaaa', 'a') == 4
          assert count_occurrences('ab', 'ab') == 1
          """,
          ["""
           def count_occurrences(s, sub):
               return sum(1 for i in range(len(s) - len(sub) + 1) if s[i:i + len(sub)] == sub)
           """,
           """
           def count_occurrences(s, sub):
               n, i = 0, s.find(sub)
               while i != -1:
                   n += 1
                   i = s.find(sub, i + 1)
               return n
           """],
          {"non-overlapping": """
           def count_occurrences(s, sub):
               return s.count(sub)
           """}),
    _task("median",
          "Write a Python function `median(xs)` that returns the median of a non-empty list of "
          "numbers (the mean of the two middle values when the length is even).",
          """
          assert median([3, 1, 2]) == 2
          """,
          """
          assert median([1, 2, 3, 4]) == 2.5
          assert median([5]) == 5
          assert median([7, 1]) == 4
          assert median([1, 1, 1, 2]) == 1
          assert median([-1, -3, -2]) == -2
          assert median([4, 2, 8, 6]) == 5
          """,
          ["""
           def median(xs):
               s = sorted(xs)
               m = len(s) // 2
               return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2
           """,
           """
           import statistics

           def median(xs):
               return statistics.median(xs)
           """],
          {"upper middle": """
           def median(xs):
               return sorted(xs)[len(xs) // 2]
           """,
           "lower middle": """
           def median(xs):
               return sorted(xs)[(len(xs) - 1) // 2]
           """}),
    _task("to_binary",
          "Write a Python function `to_binary(n)` that returns the binary representation of the "
          "integer n >= 0 as a string without prefix (to_binary(0) is '0').",
          """
          assert to_binary(5) == '101'
          """,
          """
          assert to_binary(0) == '0'
          assert to_binary(1) == '1'
          assert to_binary(8) == '1000'
          assert to_binary(255) == '11111111'
          assert to_binary(2) == '10'
          assert to_binary(1024) == '10000000000'
          """,
          ["""
           def to_binary(n):
               return bin(n)[2:]
           """,
           """
           def to_binary(n):
               if n == 0:
                   return '0'
               bits = ''
               while n:
                   bits = str(n % 2) + bits
                   n //= 2
               return bits
           """],
          {"empty for 0": """
           def to_binary(n):
               out = ''
               while n > 0:
                   out = str(n % 2) + out
                   n //= 2
               return out
           """}),
    _task("are_anagrams",
          "Write a Python function `are_anagrams(a, b)` that returns True when a and b are "
          "anagrams of each other, ignoring case and spaces.",
          """
          assert are_anagrams('listen', 'silent') is True
          assert are_anagrams('abc', 'abd') is False
          """,
          """
          assert are_anagrams('Dormitory', 'Dirty room') is True
          assert are_anagrams('', '') is True
          assert are_anagrams('a', 'aa') is False
          assert are_anagrams('Tea', 'Eat') is True
          assert are_anagrams('ab', 'ba ') is True
          assert are_anagrams('abc', 'ab') is False
          """,
          ["""
           def are_anagrams(a, b):
               norm = lambda s: sorted(s.replace(' ', '').lower())
               return norm(a) == norm(b)
           """,
           """
           from collections import Counter

           def are_anagrams(a, b):
               return Counter(a.lower().replace(' ', '')) == Counter(b.lower().replace(' ', ''))
           """],
          {"case and space sensitive": """
           def are_anagrams(a, b):
               return sorted(a) == sorted(b)
           """,
           "compares sets": """
           def are_anagrams(a, b):
               return set(a.lower().replace(' ', '')) == set(b.lower().replace(' ', ''))
           """}),
    _task("last_index",
          "Write a Python function `last_index(xs, x)` that returns the index of the last "
          "occurrence of x in the list xs, or -1 when x does not occur.",
          """
          assert last_index([1, 2, 1], 1) == 2
          """,
          """
          assert last_index([], 1) == -1
          assert last_index([1, 2, 3], 4) == -1
          assert last_index([5], 5) == 0
          assert last_index([1, 1, 1], 1) == 2
          assert last_index([2, 1, 3], 2) == 0
          assert last_index([1, 2, 3, 2], 2) == 3
          """,
          ["""
           def last_index(xs, x):
               for i in range(len(xs) - 1, -1, -1):
                   if xs[i] == x:
                       return i
               return -1
           """,
           """
           def last_index(xs, x):
               found = -1
               for i, v in enumerate(xs):
                   if v == x:
                       found = i
               return found
           """],
          {"raises when absent": """
           def last_index(xs, x):
               return len(xs) - 1 - xs[::-1].index(x)
           """,
           "skips index 0": """
           def last_index(xs, x):
               for i in range(len(xs) - 1, 0, -1):
                   if xs[i] == x:
                       return i
               return -1
           """}),
    _task("rotate_left",
          "Write a Python function `rotate_left(xs, k)` that returns the list xs rotated left by "
          "k positions (k >= 0, possibly larger than len(xs)).",
          """
          assert rotate_left([1, 2, 3, 4], 1) == [2, 3, 4, 1]
          """,
          """
          assert rotate_left([], 3) == []
          assert rotate_left([1, 2, 3], 3) == [1, 2, 3]
          assert rotate_left([1, 2, 3], 4) == [2, 3, 1]
          assert rotate_left([1, 2, 3], 0) == [1, 2, 3]
          assert rotate_left([1], 7) == [1]
          assert rotate_left([1, 2, 3, 4, 5], 2) == [3, 4, 5, 1, 2]
          """,
          ["""
           def rotate_left(xs, k):
               if not xs:
                   return []
               k %= len(xs)
               return xs[k:] + xs[:k]
           """,
           """
           from collections import deque

           def rotate_left(xs, k):
               d = deque(xs)
               d.rotate(-k)
               return list(d)
           """],
          {"no modulo": """
           def rotate_left(xs, k):
               return xs[k:] + xs[:k]
           """,
           "modulo without empty check": """
           def rotate_left(xs, k):
               k = k % len(xs)
               return xs[k:] + xs[:k]
           """}),
    _task("average",
          "Write a Python function `average(xs)` that returns the arithmetic mean of a list of "
          "numbers as a float, or 0.0 for an empty list.",
          """
          assert average([1, 2, 3]) == 2
          """,
          """
          assert average([]) == 0.0
          assert average([5]) == 5
          assert average([1, 2]) == 1.5
          assert average([-1, 1]) == 0
          assert average([2, 2, 2, 2]) == 2
          assert average([1, 2, 3, 4]) == 2.5
          """,
          ["""
           def average(xs):
               return sum(xs) / len(xs) if xs else 0.0
           """,
           """
           def average(xs):
               if len(xs) == 0:
                   return 0.0
               total = 0.0
               for x in xs:
                   total += x
               return total / len(xs)
           """],
          {"integer division": """
           def average(xs):
               return sum(xs) // len(xs) if xs else 0.0
           """,
           "no empty check": """
           def average(xs):
               return sum(xs) / len(xs)
           """}),
    _task("is_sorted",
          "Write a Python function `is_sorted(xs)` that returns True when the list xs is in "
          "non-decreasing order (equal neighbours allowed).",
          """
          assert is_sorted([1, 2, 3]) is True
          assert is_sorted([3, 1]) is False
          """,
          """
          assert is_sorted([]) is True
          assert is_sorted([1]) is True
          assert is_sorted([1, 1, 2]) is True
          assert is_sorted([1, 3, 2]) is False
          assert is_sorted([2, 2, 2]) is True
          assert is_sorted([5, 4, 6]) is False
          """,
          ["""
           def is_sorted(xs):
               return all(a <= b for a, b in zip(xs, xs[1:]))
           """,
           """
           def is_sorted(xs):
               return xs == sorted(xs)
           """],
          {"strictly increasing": """
           def is_sorted(xs):
               return all(xs[i] < xs[i + 1] for i in range(len(xs) - 1))
           """,
           "ends only": """
           def is_sorted(xs):
               return not xs or xs[0] <= xs[-1]
           """}),
    _task("caesar",
          "Write a Python function `caesar(s, k)` that shifts every letter of s by k places in "
          "the alphabet (wrapping around, keeping upper/lower case) and leaves other characters "
          "unchanged.",
          """
          assert caesar('abc', 1) == 'bcd'
          """,
          """
          assert caesar('xyz', 3) == 'abc'
          assert caesar('ABC', 1) == 'BCD'
          assert caesar('a b!', 1) == 'b c!'
          assert caesar('', 5) == ''
          assert caesar('abc', 26) == 'abc'
          assert caesar('Hello', 13) == 'Uryyb'
          """,
          ["""
           def caesar(s, k):
               out = []
               for c in s:
                   if c.islower():
                       out.append(chr((ord(c) - 97 + k) % 26 + 97))
                   elif c.isupper():
                       out.append(chr((ord(c) - 65 + k) % 26 + 65))
                   else:
                       out.append(c)
               return ''.join(out)
           """,
           """
           import string

           def caesar(s, k):
               lo, up = string.ascii_lowercase, string.ascii_uppercase
               k %= 26
               table = str.maketrans(lo + up, lo[k:] + lo[:k] + up[k:] + up[:k])
               return s.translate(table)
           """],
          {"no wrap-around": """
           def caesar(s, k):
               return ''.join(chr(ord(c) + k) if c.isalpha() else c for c in s)
           """,
           "lower-case base for all letters": """
           def caesar(s, k):
               return ''.join(chr((ord(c) - 97 + k) % 26 + 97) if c.isalpha() else c for c in s)
           """}),
]
