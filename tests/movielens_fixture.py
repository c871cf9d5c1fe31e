"""A small MovieLens-100K look-alike written in both the GroupLens and the RecBole formats."""
import os

from tfrec.data.movielens import GENRES

# (user, item, rating, timestamp); the repeated last row is an exact duplicate.
RATINGS = [
    ("1", "10", 5, 881250949), ("1", "20", 3, 881250949), ("1", "30", 4, 881251000),
    ("1", "40", 1, 881252000), ("2", "10", 2, 891717742), ("2", "30", 5, 891717800),
    ("2", "40", 4, 891717900), ("3", "20", 1, 878887116), ("3", "10", 3, 878887200),
    ("3", "30", 2, 878887300), ("3", "40", 5, 878887300), ("3", "40", 5, 878887300),
]
USERS = [("1", "24", "M", "technician", "85711"), ("2", "53", "F", "other", "94043"),
         ("3", "23", "M", "writer", "32067")]
# (item, grouplens title, release date, recbole title, year, genres)
ITEMS = [
    ("10", "Toy Story (1995)", "01-Jan-1995", "Toy Story", "1995", ("Animation", "Comedy")),
    ("20", "Deadly Cure, The (1996)", "01-Jan-1996", "The Deadly Cure", "1996", ("Action",)),
    ("30", "Seven (Se7en) (1995)", "01-Jan-1995", "Seven (Se7en)", "1995", ("Crime", "Thriller")),
    ("40", "unknown", "", "unkonwn", "unkonwn", ("unknown",)),
]


def write_grouplens(folder, ratings=RATINGS):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "u.data"), "w") as f:
        f.writelines(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings)
    with open(os.path.join(folder, "u.user"), "w") as f:
        f.writelines("|".join(row) + "\n" for row in USERS)
    with open(os.path.join(folder, "u.item"), "w", encoding="latin-1") as f:
        for item, title, date, _, _, genres in ITEMS:
            flags = "|".join("1" if g in genres else "0" for g in GENRES)
            f.write(f"{item}|{title}|{date}||http://example.invalid/{item}|{flags}\n")
    return folder


def write_recbole(folder, ratings=RATINGS):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "ml-100k.inter"), "w") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        f.writelines(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings)
    with open(os.path.join(folder, "ml-100k.user"), "w") as f:
        f.write("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n")
        f.writelines("\t".join(row) + "\n" for row in USERS)
    with open(os.path.join(folder, "ml-100k.item"), "w") as f:
        f.write("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n")
        for item, _, _, title, year, genres in ITEMS:
            f.write(f"{item}\t{title}\t{year}\t{' '.join(genres)}\n")
    return folder
