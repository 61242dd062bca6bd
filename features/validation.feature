@validation
Feature: Bad requests are refused and change nothing
  People, scripts and other programs talk to vman over HTTP, and some of what
  they send is wrong: JSON cut off half-way, a missing or misspelt field, text
  where a number belongs, a size of minus one or of a trillion gigabytes, a
  name that would reach into another folder or smuggle options into QEMU's
  command line, an id that does not exist or that tries to climb out of vman's
  folders, an action the VM's state does not allow.

  vman refuses each of them with a problem report (RFC 9457,
  application/problem+json) whose status is the HTTP status and whose detail
  says what was wrong: 400 for a malformed request, 404 for something that
  does not exist, 409 for what the current state forbids. A refused request
  changes nothing: the database file, the disk files and the VM folders are
  compared before and after it.

  Requests that conflict and arrive at the same moment (two starts of one VM,
  a start and a delete, one disk attached to two VMs) end with exactly one
  winner, and the database, the QEMU processes and QMP agree on the outcome.

  Only the scenarios tagged @integration start VMs on purpose; the rest need
  no QEMU, and each of their rows takes milliseconds once vman is up.

  Background:
    Given vman is running on this host

  Rule: Every refusal below changes one thing in a request that vman accepts

    Scenario Outline: The request to create a <kind> that the refusals start from is accepted
      When the operator asks to create a <kind> with the request every refusal below starts from
      Then the request is accepted with status 201

      Examples:
        | kind     |
        | template |
        | VM       |
        | disk     |

  Rule: Creating a template takes one JSON object with a valid name, CPU count, memory size and boot files

    Scenario Outline: Creating a template from <body> is refused: <why>
      When the operator sends <body> to create a template
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | body                        | why                          |
        | {"name": "tiny", "cpus": 1  | the JSON is cut off          |
        | {'name': 'tiny', 'cpus': 1} | single quotes are not JSON   |
        | {"name": "tiny",}           | a trailing comma is not JSON |
        | ["tiny", 1, 256]            | a list, not an object        |
        | "tiny"                      | a string, not an object      |
        | 42                          | a number, not an object      |
        | null                        | null, not an object          |
        | nothing                     | there is no body at all      |
        | {}                          | every field is missing       |

    Scenario Outline: A template whose <field> is <value> is refused: <why>
      When the operator asks to create a template whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples: The name
        | field | value             | why                                               |
        | name  | left out          | every template has a name                         |
        | name  | ""                | an empty name names nothing                       |
        | name  | 42                | a name is text, not a number                      |
        | name  | null              | a name cannot be null                             |
        | name  | true              | a name is text, not a truth value                 |
        | name  | ["tiny"]          | a name is text, not a list                        |
        | name  | "boot/tiny"       | a slash would reach into another folder           |
        | name  | "tiny..old"       | two dots could climb out of a folder              |
        | name  | "my tiny"         | names have no spaces                              |
        | name  | "tiny\u0001"      | a control character                               |
        | name  | "tiny\u000a"      | a newline would split a log line or a config file |
        | name  | "tiny,cache=none" | a comma would smuggle options into QEMU           |
        | name  | "-tiny"           | a leading dash reads as a command-line option     |
        | name  | ".tiny"           | a leading dot makes a hidden file                 |
        | name  | "tïny"            | only ASCII letters and digits                     |
        | name  | 64 letters        | one more than the 63 characters a name may have   |
        | name  | 10000 letters     | a very long name                                  |

      Examples: The number of CPUs
        | field | value            | why                               |
        | cpus  | left out         | every template says how many CPUs |
        | cpus  | "2"              | a number in quotes is text        |
        | cpus  | null             | the count cannot be null          |
        | cpus  | true             | a truth value is not a count      |
        | cpus  | [2]              | a list is not a count             |
        | cpus  | -1               | a count cannot be negative        |
        | cpus  | 0                | a VM has at least one CPU         |
        | cpus  | 1.5              | CPUs come whole                   |
        | cpus  | 65               | one more than the 64 allowed      |
        | cpus  | 1e12             | a trillion CPUs                   |
        | cpus  | 9007199254740992 | 2^53, beyond exact whole numbers  |

      Examples: The memory size
        | field     | value            | why                                 |
        | memory_mb | left out         | every template says how much memory |
        | memory_mb | "512"            | a number in quotes is text          |
        | memory_mb | null             | the size cannot be null             |
        | memory_mb | -512             | a size cannot be negative           |
        | memory_mb | 0                | a VM needs memory                   |
        | memory_mb | 63               | one below the 64 MB minimum         |
        | memory_mb | 512.5            | memory comes in whole megabytes     |
        | memory_mb | 1048577          | one more than the 1 TB allowed      |
        | memory_mb | 1e12             | a trillion megabytes                |
        | memory_mb | 9007199254740992 | 2^53, beyond exact whole numbers    |

      Examples: The boot files
        | field             | value                             | why                                                  |
        | kernel_path       | left out                          | without a kernel or a base image nothing can boot    |
        | kernel_path       | "vmlinuz"                         | a relative path depends on where vman was started    |
        | kernel_path       | "/boot/../etc/passwd"             | a path that climbs is not a plain path               |
        | kernel_path       | "/no/such/vmlinuz"                | the file does not exist                              |
        | kernel_path       | ""                                | an empty path names no file                          |
        | kernel_path       | 42                                | a path is text                                       |
        | cmdline           | "console=ttyS0\u000ainit=/bin/sh" | a control character in the kernel command line       |
        | cmdline           | 2049 letters                      | one more than the 2048 characters allowed            |
        | base_image_format | "vmdk"                            | base images are qcow2 or raw                         |
        | base_image_path   | "/no/such/root.qcow2"             | the file does not exist (and its format is not said) |

      Examples: Fields vman does not take
        | field   | value      | why                                      |
        | colour  | "blue"     | an unknown field is refused, not ignored |
        | id      | "tpl-mine" | vman chooses the ids                     |
        | builtin | true       | only vman's own templates are built in   |

  Rule: Creating a VM takes one JSON object with a valid name and a template

    Scenario Outline: Creating a VM from <body> is refused: <why>
      When the operator sends <body> to create a VM
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | body                                                               | why                                               |
        | {"name": "web"                                                     | the JSON is cut off                               |
        | {"name": "web", "template": "small"}}                              | a stray brace after the object                    |
        | ["web", "small"]                                                   | a list, not an object                             |
        | "web"                                                              | a string, not an object                           |
        | 42                                                                 | a number, not an object                           |
        | true                                                               | a truth value, not an object                      |
        | nothing                                                            | there is no body at all                           |
        | {}                                                                 | every field is missing                            |
        | {"__proto__": {"admin": true}, "name": "web", "template": "small"} | a __proto__ key could poison every object in vman |

    Scenario Outline: A VM whose <field> is <value> is refused: <why>
      When the operator asks to create a VM whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples: The name
        | field | value             | why                                               |
        | name  | left out          | every VM has a name                               |
        | name  | ""                | an empty name names nothing                       |
        | name  | 42                | a name is text, not a number                      |
        | name  | null              | a name cannot be null                             |
        | name  | ["web"]           | a name is text, not a list                        |
        | name  | "web/1"           | a slash would reach into another folder           |
        | name  | "web..1"          | two dots could climb out of a folder              |
        | name  | ".."              | two dots alone are the folder above               |
        | name  | "my web"          | names have no spaces                              |
        | name  | "web\u0001"       | a control character                               |
        | name  | "web\u000a"       | a newline would split a log line or a config file |
        | name  | "web,readonly=on" | a comma would smuggle options into QEMU           |
        | name  | "-web"            | a leading dash reads as a command-line option     |
        | name  | ".web"            | a leading dot makes a hidden file                 |
        | name  | 64 letters        | one more than the 63 characters a name may have   |
        | name  | 10000 letters     | a very long name                                  |

      Examples: The template
        | field    | value       | why                                  |
        | template | left out    | every VM is made from a template     |
        | template | ""          | an empty reference names no template |
        | template | 42          | a reference is text                  |
        | template | null        | the reference cannot be null         |
        | template | ["small"]   | one template, not a list             |
        | template | 300 letters | longer than any template id or name  |

      Examples: Fields vman does not take
        | field  | value     | why                                      |
        | colour | "blue"    | an unknown field is refused, not ignored |
        | id     | "vm-mine" | vman chooses the ids                     |
        | state  | "running" | a new VM is created, not running         |
        | cpus   | 8         | the template says how many CPUs          |

  Rule: Creating a disk takes one JSON object with a valid name and a whole number of gigabytes

    Scenario Outline: Creating a disk from <body> is refused: <why>
      When the operator sends <body> to create a disk
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | body                      | why                     |
        | {"name": "data", "size_gb | the JSON is cut off     |
        | [{"name": "data"}]        | a list, not an object   |
        | "data"                    | a string, not an object |
        | 10                        | a number, not an object |
        | null                      | null, not an object     |
        | nothing                   | there is no body at all |
        | {}                        | every field is missing  |

    # Names with a slash, two dots, a space or a comma, and sizes of 0, -1,
    # 1.5, "ten" and 1025 are in disks.feature.
    Scenario Outline: A disk whose <field> is <value> is refused: <why>
      When the operator asks to create a disk whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples: The name
        | field | value         | why                                               |
        | name  | left out      | every disk has a name                             |
        | name  | ""            | an empty name names nothing                       |
        | name  | 42            | a name is text, not a number                      |
        | name  | null          | a name cannot be null                             |
        | name  | "data\u0001"  | a control character                               |
        | name  | "data\u000a"  | a newline would split a log line or a config file |
        | name  | "-data"       | a leading dash reads as a command-line option     |
        | name  | ".data"       | a leading dot makes a hidden file                 |
        | name  | 64 letters    | one more than the 63 characters a name may have   |
        | name  | 10000 letters | a very long name                                  |

      Examples: The size
        | field   | value            | why                              |
        | size_gb | left out         | every disk has a size            |
        | size_gb | null             | the size cannot be null          |
        | size_gb | true             | a truth value is not a size      |
        | size_gb | [1]              | a list is not a size             |
        | size_gb | 1e12             | a trillion gigabytes             |
        | size_gb | 9007199254740992 | 2^53, beyond exact whole numbers |

      Examples: The format and fields vman does not take
        | field  | value             | why                                       |
        | format | "raw"             | disks are qcow2                           |
        | format | "QCOW2"           | formats are written in lower case         |
        | format | null              | the format is qcow2 or left out, not null |
        | colour | "blue"            | an unknown field is refused, not ignored  |
        | path   | "/etc/passwd"     | vman decides where disk files go          |
        | vm_id  | "vm-000000000000" | a disk is attached by its own request     |

  Rule: Attaching a disk takes one JSON object that names the VM

    Scenario Outline: Attaching a disk with <body> is refused: <why>
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      When the operator sends <body> to attach the disk "data" to "db"
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | body                | why                     |
        | {"vm_id": "vm-      | the JSON is cut off     |
        | ["vm-000000000000"] | a list, not an object   |
        | "vm-000000000000"   | a string, not an object |
        | 42                  | a number, not an object |
        | null                | null, not an object     |
        | nothing             | there is no body at all |
        | {}                  | the VM is missing       |

    Scenario Outline: Attaching a disk in a request whose <field> is <value> is refused: <why>
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      When the operator asks to attach the disk "data" to "db" in a request whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | field       | value       | why                                                |
        | vm_id       | left out    | the request names the VM                           |
        | vm_id       | ""          | an empty id names nothing                          |
        | vm_id       | 42          | an id is text                                      |
        | vm_id       | null        | the id cannot be null                              |
        | vm_id       | true        | a truth value is not an id                         |
        | vm_id       | ["vm-1"]    | one VM, not a list                                 |
        | vm_id       | 300 letters | longer than any id vman hands out                  |
        | mount_point | "/dev/vdb"  | the guest names the device; vman does not take one |
        | readonly    | true        | an unknown field is refused, not ignored           |

  Rule: Stopping a VM takes at most one option, force, which is true or false

    Scenario Outline: Stopping a VM with <body> is refused: <why>
      Given a VM "db" created from the small template
      When the operator sends <body> to stop the VM "db"
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | body              | why                          |
        | {"force": tru     | the JSON is cut off          |
        | [{"force": true}] | a list, not an object        |
        | "force"           | a string, not an object      |
        | 1                 | a number, not an object      |
        | true              | a truth value, not an object |

    Scenario Outline: Stopping a VM in a request whose <field> is <value> is refused: <why>
      Given a VM "db" created from the small template
      When the operator asks to stop the VM "db" in a request whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | field   | value  | why                                       |
        | force   | "yes"  | force is true or false                    |
        | force   | "true" | true in quotes is text                    |
        | force   | 1      | a number is not a truth value             |
        | force   | null   | force is true or false, or left out       |
        | force   | [true] | a list is not a truth value               |
        | timeout | 30     | an unknown option is refused, not ignored |

    Scenario Outline: Stopping a VM with the query <query> is refused: <why>
      Given a VM "db" created from the small template
      When the operator asks to stop the VM "db" with the query <query>
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | query            | why                                       |
        | force=maybe      | force is true or false                    |
        | force=1          | force is spelt true or false              |
        | force=true&now=1 | an unknown option is refused, not ignored |

  Rule: An action that takes no options refuses a body that gives some

    Scenario Outline: <body> sent to <request> is refused: <why>
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      When the operator sends <body> to <request>
      Then the request is refused with status 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | request                | body                         | why                                                      |
        | start the VM "db"      | {"force": true}              | start has no options: a forced start would be a guess    |
        | start the VM "db"      | {"cpus": 4}                  | the template, not the start, says how many CPUs          |
        | start the VM "db"      | {"force": tr                 | the JSON is cut off                                      |
        | restart the VM "db"    | {"force": true}              | a caller asking for a hard reset must not get a soft one |
        | restart the VM "db"    | []                           | a list, not an object                                    |
        | detach the disk "data" | {"vm_id": "vm-000000000000"} | a disk is detached from the VM it is attached to         |

  Rule: An id that names nothing is answered with 404, and never reaches the file system

    Scenario Outline: Asking to <action> the <kind> with the id <id> is answered with <status>
      Given a VM "db" created from the small template
      And files where the id "../../etc/passwd" would lead from vman's folders
      When the operator asks to <action> the <kind> with the id <id>
      Then the request is refused with status <status>
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before
      And the files where the id "../../etc/passwd" would lead are untouched

      # Well-formed disk ids that were never handed out are in disks.feature.
      Examples: Ids that vman never handed out
        | action  | kind     | id                 | status |
        | look up | template | "tpl-000000000000" | 404    |
        | delete  | template | "tpl-000000000000" | 404    |
        | look up | VM       | "vm-000000000000"  | 404    |
        | delete  | VM       | "vm-000000000000"  | 404    |
        | start   | VM       | "vm-000000000000"  | 404    |
        | stop    | VM       | "vm-000000000000"  | 404    |
        | restart | VM       | "vm-000000000000"  | 404    |

      Examples: Ids that climb out of vman's folders, sent in one path segment
        | action         | kind     | id                 | status |
        | look up        | template | "../../etc/passwd" | 404    |
        | delete         | template | "../../etc/passwd" | 404    |
        | look up        | VM       | "../../etc/passwd" | 404    |
        | delete         | VM       | "../../etc/passwd" | 404    |
        | start          | VM       | "../../etc/passwd" | 404    |
        | stop           | VM       | "../../etc/passwd" | 404    |
        | restart        | VM       | "../../etc/passwd" | 404    |
        | look up        | disk     | "../../etc/passwd" | 404    |
        | delete         | disk     | "../../etc/passwd" | 404    |
        | attach to "db" | disk     | "../../etc/passwd" | 404    |
        | detach         | disk     | "../../etc/passwd" | 404    |

      Examples: Two dots as the whole path segment, as curl --path-as-is sends them
        | action         | kind     | id   | status |
        | look up        | template | ".." | 404    |
        | delete         | template | ".." | 404    |
        | look up        | VM       | ".." | 404    |
        | delete         | VM       | ".." | 404    |
        | start          | VM       | ".." | 404    |
        | stop           | VM       | ".." | 404    |
        | restart        | VM       | ".." | 404    |
        | look up        | disk     | ".." | 404    |
        | delete         | disk     | ".." | 404    |
        | attach to "db" | disk     | ".." | 404    |
        | detach         | disk     | ".." | 404    |

      Examples: Ids longer than any vman hands out are malformed
        | action  | kind     | id          | status |
        | look up | VM       | 200 letters | 400    |
        | look up | template | 300 letters | 400    |
        | delete  | template | 300 letters | 400    |
        | look up | VM       | 300 letters | 400    |
        | delete  | VM       | 300 letters | 400    |
        | start   | VM       | 300 letters | 400    |
        | look up | disk     | 300 letters | 400    |
        | delete  | disk     | 300 letters | 400    |

    Scenario Outline: Creating a VM from the template <template> is answered with 404: <why>
      When the operator asks to create a VM whose template is <template>
      Then the request is refused with status 404
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | template           | why                       |
        | "huge"             | no template has that name |
        | "tpl-000000000000" | no template has that id   |
        | "../../etc/passwd" | a path is not a template  |

  Rule: What vman cannot route or read is answered with a problem too

    Scenario Outline: <what> is answered with <status>
      When the operator sends a <method> request to <path>
      Then the request is refused with status <status>
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples: Paths vman does not serve
        | what                                | method | path                     | status |
        | A path vman does not serve          | GET    | /api/v1/volumes          | 404    |
        | An API version that does not exist  | GET    | /api/v2/vms              | 404    |
        | A path outside the API              | GET    | /admin                   | 404    |
        | A path that climbs out of the API   | GET    | /api/v1/../../etc/passwd | 404    |
        | A path with broken percent-encoding | GET    | /api/v1/vms/%zz          | 400    |

      Examples: Methods a path does not take
        | what                         | method | path                              | status     |
        | Replacing every VM at once   | PUT    | /api/v1/vms                       | 404 or 405 |
        | Deleting every VM at once    | DELETE | /api/v1/vms                       | 404 or 405 |
        | Deleting every disk at once  | DELETE | /api/v1/disks                     | 404 or 405 |
        | Changing a template in place | PATCH  | /api/v1/templates/tpl-small       | 404 or 405 |
        | Starting a VM with GET       | GET    | /api/v1/vms/vm-000000000000/start | 404 or 405 |

    Scenario Outline: A VM request sent as <content type> is refused
      When the operator sends a well-formed VM request as <content type>
      Then the request is refused with status 415 or 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | content type                      |
        | text/plain                        |
        | application/x-www-form-urlencoded |
        | application/xml                   |
        | multipart/form-data; boundary=x   |

    Scenario: A body larger than vman reads is refused without being read
      When the operator asks to create a VM whose name is 100000 letters
      Then the request is refused with status 413
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

  Rule: What the state of a VM or template forbids is refused with 409 and changes nothing

    Scenario Outline: <refusal> is refused
      Given a template "tiny" that is not built in
      And a VM "db" created from the tiny template
      When the operator tries to <request>
      Then the request is refused with status 409
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

      Examples:
        | refusal                                      | request                                  |
        | Stopping a VM that was never started         | stop the VM "db"                         |
        | Restarting a VM that was never started       | restart the VM "db"                      |
        | Deleting a built-in template                 | delete the template "small"              |
        | Deleting a template a VM was created from    | delete the template "tiny"               |
        | A second VM with a name already in use       | create a VM "db" from the small template |
        | A second template with a name already in use | create a template "tiny"                 |
        | A template with the name of a built-in one   | create a template "medium"               |

    # A template is found by id or by name: a name that is another template's
    # id would make one of the two unreachable by it.
    Scenario: A template named like the id of another template is refused
      When the operator tries to create a template "tpl-small"
      Then the request is refused with status 409 or 400
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before

    @integration
    Scenario: A running VM cannot be started again
      Given a running VM "web" from the small template
      When the operator tries to start the VM "web"
      Then the request is refused with status 409
      And the answer is a problem that says what was wrong
      And the database, the disk files and the VM folders are as they were before
      And "web" still runs in the same QEMU process

  Rule: Conflicting requests sent at the same moment have exactly one winner

    @integration
    Scenario: Two starts of one VM at the same moment start it once
      Given a VM "web" created from the small template
      When the VM "web" is started twice at the same moment
      Then one start succeeded and the other was refused with status 409
      And exactly one QEMU process runs "web"
      And the VM "web" is recorded as running
      And the database, QEMU, the guests and the files agree

    @integration
    Scenario Outline: A VM <sent> at the same moment leaves nothing behind
      Given a VM "web" created from the small template
      When the VM "web" is <sent> at the same moment
      Then the delete succeeded, and the start either succeeded first or was refused with status 404 or 409
      And the database has no record of "web"
      And no QEMU process of "web" is left
      And the storage folder of "web" is gone

      Examples: Whichever is sent first
        | sent                |
        | started and deleted |
        | deleted and started |

    @integration
    Scenario: One disk attached to two running VMs at the same moment goes to exactly one
      Given a running VM "db" from the small template
      And a running VM "replica" from the small template
      And a 1 GB disk "data"
      When the disk "data" is attached to "db" and to "replica" at the same moment
      Then one attach succeeded and the other was refused with status 409
      And the disk "data" is recorded as attached to the VM whose attach succeeded
      And QMP lists the disk "data" on the VM whose attach succeeded and not on the other
      And the database, QEMU, the guests and the files agree
